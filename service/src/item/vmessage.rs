//! vMessage 1.1 (IrMC, `text/x-vmessage`): the wire format of short messages.
//!
//! ## What the writer emits (byte-stable: the same [`Sms`] always gives the same bytes)
//! ```text
//! BEGIN:VMSG
//! VERSION:1.1
//! X-IRMC-STATUS:READ            READ | UNREAD
//! X-IRMC-BOX:INBOX              INBOX | SENTBOX | DRAFT
//! BEGIN:VCARD                   the other party: sender of a received message,
//! VERSION:2.1                   recipient of an outgoing one
//! TEL:+15551230001              (an alphanumeric sender as it came: TEL:Vendor)
//! END:VCARD
//! BEGIN:VENV
//! BEGIN:VBODY
//! Date:2024-01-01T08:00:00+02:00   RFC 3339 with the network's offset; omitted without timestamp
//! Hello from the fake modem!       the UTF-8 text, one line per line of the message
//! END:VBODY
//! END:VENV
//! END:VMSG
//! ```
//! Lines end in CRLF. A line break inside the text is a line break in the body (the text's
//! `\n` becomes CRLF, and a parser joins the body lines with `\n`).
//!
//! Bodies that cannot travel as plain lines are base64 (lines of 76 characters) after a
//! `Content-Transfer-Encoding:base64` header:
//! - binary (8-bit) messages, with `Content-Type:application/octet-stream` first;
//! - texts containing CR or other control characters (XML cannot carry most of them and a
//!   CR would not survive line-end normalisation), a line starting with `BEGIN:` or `END:`,
//!   or whose first line would read as a body header (`Date:`, `Content-Type:`,
//!   `Content-Transfer-Encoding:`).
//!
//! ## What the parser accepts
//! CRLF or LF line ends, any case in names, unknown properties (ignored), a missing
//! `X-IRMC-STATUS` (read) or `X-IRMC-BOX` (inbox), the number in a vCard at message level or
//! inside `VENV` (outgoing messages from other writers put the recipient there), `TEL` with
//! parameters, `Date:` in the forms of [`SmsTimestamp::parse`] or RFC 2822
//! (`Mon, 01 Jan 2024 08:00:00 +0200`), and base64 bodies as above.

use base64::Engine as _;

use super::sms::{Sms, SmsBody, SmsFolder, SmsTimestamp};
use super::ItemError;

const BODY_HEADERS: [&str; 3] = ["date", "content-type", "content-transfer-encoding"];

fn malformed(why: impl Into<String>) -> ItemError {
    ItemError::Malformed(format!("vMessage: {}", why.into()))
}

/// Whether `line` would be read as a body header.
fn is_header_line(line: &str) -> bool {
    match line.split_once(':') {
        Some((name, _)) => BODY_HEADERS
            .iter()
            .any(|h| name.trim().eq_ignore_ascii_case(h)),
        None => false,
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether `text` can be written as plain body lines and read back unchanged.
fn plain_text_ok(text: &str) -> bool {
    if text
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{FFFE}' || c == '\u{FFFF}')
    {
        return false;
    }
    if text.split('\n').next().is_some_and(is_header_line) {
        return false;
    }
    !text
        .split('\n')
        .any(|l| starts_with_ci(l.trim_start(), "BEGIN:") || starts_with_ci(l.trim_start(), "END:"))
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    if b64.is_empty() {
        out.push_str("\r\n");
    }
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
}

/// A value for a single property line: control characters (CR, LF, …) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Writes `sms` as vMessage 1.1.
pub fn write(sms: &Sms) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("BEGIN:VMSG\r\nVERSION:1.1\r\n");
    out.push_str(if sms.read() {
        "X-IRMC-STATUS:READ\r\n"
    } else {
        "X-IRMC-STATUS:UNREAD\r\n"
    });
    out.push_str("X-IRMC-BOX:");
    out.push_str(sms.folder().irmc_box());
    out.push_str("\r\nBEGIN:VCARD\r\nVERSION:2.1\r\n");
    let number = one_line(sms.number());
    if number.is_ascii() {
        out.push_str("TEL:");
    } else {
        out.push_str("TEL;CHARSET=UTF-8:");
    }
    out.push_str(&number);
    out.push_str("\r\nEND:VCARD\r\nBEGIN:VENV\r\nBEGIN:VBODY\r\n");
    if let Some(ts) = sms.timestamp() {
        out.push_str("Date:");
        out.push_str(&ts.canonical());
        out.push_str("\r\n");
    }
    match sms.body() {
        SmsBody::Text(t) if plain_text_ok(t) => {
            for line in t.split('\n') {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        SmsBody::Text(t) => {
            out.push_str("Content-Transfer-Encoding:base64\r\n");
            push_base64(&mut out, t.as_bytes());
        }
        SmsBody::Data(d) => {
            out.push_str(
                "Content-Type:application/octet-stream\r\nContent-Transfer-Encoding:base64\r\n",
            );
            push_base64(&mut out, d);
        }
    }
    out.push_str("END:VBODY\r\nEND:VENV\r\nEND:VMSG\r\n");
    out.into_bytes()
}

/// A content line split into upper-cased name (without parameters), parameters and value.
struct Line<'a> {
    name: String,
    value: &'a str,
}

fn split_line(line: &str) -> Option<Line<'_>> {
    let (left, value) = line.split_once(':')?;
    let name = left.split(';').next().unwrap_or(left);
    // a group prefix (item1.TEL) is ignored
    let name = name
        .rsplit('.')
        .next()
        .unwrap_or(name)
        .trim()
        .to_ascii_uppercase();
    Some(Line { name, value })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// `[Day,] DD Mon YYYY HH:MM[:SS] (±HHMM|GMT|UT|Z)` (RFC 2822) → the ISO form.
fn rfc2822_to_iso(s: &str) -> Option<String> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut parts = s.split_whitespace();
    let day: u8 = parts.next()?.parse().ok()?;
    let mon = parts.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| mon.starts_with(m))? + 1;
    let year: u16 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut hms = time.split(':');
    let h: u8 = hms.next()?.parse().ok()?;
    let m: u8 = hms.next()?.parse().ok()?;
    let sec: u8 = match hms.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if hms.next().is_some() {
        return None;
    }
    let zone = match zone.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => "Z".to_string(),
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => z.to_string(),
        _ => return None,
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}{zone}"
    ))
}

fn parse_date(v: &str) -> Result<SmsTimestamp, ItemError> {
    match SmsTimestamp::parse(v) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(malformed("empty Date")),
        Err(e) => rfc2822_to_iso(v)
            .and_then(|iso| SmsTimestamp::parse(&iso).ok().flatten())
            .ok_or_else(|| malformed(e.to_string())),
    }
}

/// True if `data` starts (after a BOM and blank lines) with `BEGIN:VMSG`: lets a vMessage
/// announced under another content type still be read as one.
pub fn looks_like_vmessage(data: &[u8]) -> bool {
    let data = data.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(data);
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data.get(start..start + 10)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"BEGIN:VMSG"))
}

/// Parses a vMessage.
pub fn parse(data: &[u8]) -> Result<Sms, ItemError> {
    let text = std::str::from_utf8(data).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    // BEGIN:VMSG (after blank lines)
    loop {
        match lines.next() {
            None => return Err(malformed("no BEGIN:VMSG")),
            Some(l) if l.trim().is_empty() => continue,
            Some(l) if l.trim().eq_ignore_ascii_case("BEGIN:VMSG") => break,
            Some(_) => return Err(malformed("does not start with BEGIN:VMSG")),
        }
    }

    let mut read = true;
    let mut folder = SmsFolder::Inbox;
    let mut msg_level_tel: Option<String> = None;
    let mut env_tel: Option<String> = None;
    let mut timestamp = None;
    let mut body: Option<SmsBody> = None;
    // BEGIN/END nesting below VMSG
    let mut stack: Vec<String> = Vec::new();
    let mut ended = false;
    while let Some(raw) = lines.next() {
        let line = raw.trim_end();
        if line.is_empty() && stack.last().map(String::as_str) != Some("VBODY") {
            continue;
        }
        let Some(l) = split_line(line) else {
            if stack.is_empty() {
                return Err(malformed(format!(
                    "not a property line: {}",
                    line.chars().take(40).collect::<String>()
                )));
            }
            continue;
        };
        match l.name.as_str() {
            "BEGIN" => {
                let what = l.value.trim().to_ascii_uppercase();
                if what == "VBODY" {
                    if stack.last().map(String::as_str) != Some("VENV") {
                        return Err(malformed("BEGIN:VBODY outside VENV"));
                    }
                    let b = read_body(&mut lines, &mut timestamp)?;
                    if body.is_none() {
                        body = Some(b);
                    }
                    continue;
                }
                stack.push(what);
                if stack.len() > 16 {
                    return Err(malformed("nested too deeply"));
                }
            }
            "END" => {
                let what = l.value.trim().to_ascii_uppercase();
                if stack.is_empty() {
                    if what == "VMSG" {
                        ended = true;
                        break;
                    }
                    return Err(malformed(format!("END:{what} without BEGIN")));
                }
                if stack.last() != Some(&what) {
                    return Err(malformed(format!(
                        "END:{what} does not close BEGIN:{}",
                        stack.last().map(String::as_str).unwrap_or("")
                    )));
                }
                stack.pop();
            }
            "X-IRMC-STATUS" if stack.is_empty() => {
                match l.value.trim().to_ascii_uppercase().as_str() {
                    "READ" => read = true,
                    "UNREAD" => read = false,
                    other => return Err(malformed(format!("unknown X-IRMC-STATUS '{other}'"))),
                }
            }
            "X-IRMC-BOX" if stack.is_empty() => {
                folder = SmsFolder::from_irmc_box(l.value)
                    .ok_or_else(|| malformed(format!("unknown X-IRMC-BOX '{}'", l.value.trim())))?;
            }
            "TEL" if stack.last().map(String::as_str) == Some("VCARD") => {
                let slot = if stack.len() == 1 {
                    &mut msg_level_tel
                } else {
                    &mut env_tel
                };
                if slot.is_none() {
                    *slot = Some(l.value.trim().to_string());
                }
            }
            _ => {}
        }
    }
    if !ended {
        return Err(malformed("no END:VMSG"));
    }
    let body = body.ok_or_else(|| malformed("no VBODY"))?;
    let number = if folder.is_incoming() {
        msg_level_tel.or(env_tel)
    } else {
        env_tel.or(msg_level_tel)
    };
    Ok(Sms::new(
        folder,
        read,
        number.as_deref().unwrap_or(""),
        timestamp,
        body,
    ))
}

/// Reads a VBODY after its BEGIN line, through END:VBODY.
fn read_body<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
    timestamp: &mut Option<SmsTimestamp>,
) -> Result<SmsBody, ItemError> {
    let mut in_headers = true;
    let mut base64 = false;
    let mut binary = false;
    let mut content: Vec<&str> = Vec::new();
    for line in lines.by_ref() {
        if line.trim_end().eq_ignore_ascii_case("END:VBODY") {
            if base64 {
                let joined: String = content
                    .concat()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(joined.as_bytes())
                    .map_err(|e| malformed(format!("bad base64 body: {e}")))?;
                return if binary {
                    Ok(SmsBody::Data(bytes))
                } else {
                    String::from_utf8(bytes)
                        .map(SmsBody::Text)
                        .map_err(|_| malformed("base64 text body is not UTF-8"))
                };
            }
            return Ok(SmsBody::Text(content.join("\n")));
        }
        if in_headers && is_header_line(line) {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "date" => *timestamp = Some(parse_date(value)?),
                "content-type" => {
                    let ct = value
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    binary = !ct.starts_with("text/");
                }
                _ => match value.trim().to_ascii_lowercase().as_str() {
                    "base64" => base64 = true,
                    "8bit" | "7bit" | "binary" => {}
                    other => {
                        return Err(malformed(format!(
                            "unsupported Content-Transfer-Encoding '{other}'"
                        )))
                    }
                },
            }
            continue;
        }
        in_headers = false;
        content.push(line);
    }
    Err(malformed("no END:VBODY"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/item/testdata/vmessage")
    }

    fn ts(s: &str) -> Option<SmsTimestamp> {
        SmsTimestamp::parse(s).unwrap()
    }

    fn text(folder: SmsFolder, number: &str, t: Option<&str>, body: &str) -> Sms {
        Sms::new(
            folder,
            true,
            number,
            t.and_then(ts),
            SmsBody::Text(body.into()),
        )
    }

    /// One message of every kind, named after its golden file (hand-written, in
    /// `testdata/vmessage/`).
    pub(crate) fn golden_messages() -> Vec<(&'static str, Sms)> {
        vec![
            ("gsm7-inbox", text(SmsFolder::Inbox, "+15551230001", Some("2024-01-01T08:00:00+02"), "Hello from the fake modem!")),
            ("ucs2-chinese", text(SmsFolder::Inbox, "+8613800138000", Some("2024-01-01T09:01:01+08"), "你好，世界！这是一条中文短信。")),
            (
                "concatenated",
                text(
                    SmsFolder::Inbox,
                    "+15551230002",
                    Some("2024-01-01T10:02:02-05"),
                    "This is a long concatenated message from the fake modem. It needs more than one hundred and sixty GSM characters, so the sender split it into two parts that ModemManager joins again. The End.",
                ),
            ),
            (
                "gsm7-extension",
                text(SmsFolder::Inbox, "+4917012345678", Some("2024-01-01T11:03:03+01"), "Grüße aus Köln: 5€ {ok} [x] ~ ^ | \\ @ _"),
            ),
            ("sent", text(SmsFolder::Sent, "+15551230003", None, "A message I sent earlier.")),
            ("emoji-utc", text(SmsFolder::Inbox, "+15551230004", Some("2024-01-01T13:05:05Z"), "Emoji test 😀👍 and é")),
            ("draft", text(SmsFolder::Draft, "+15551230005", None, "Draft that was never sent")),
            ("alphanumeric-half-hour", text(SmsFolder::Inbox, "Vendor", Some("2024-01-01T15:07:07+05:30"), "Your code is 123456")),
            (
                "binary",
                Sms::new(
                    SmsFolder::Inbox,
                    true,
                    "+15551230009",
                    ts("2024-01-01T16:08:08-03:30"),
                    SmsBody::Data(vec![0, 1, 2, 0xFE, 0xFF, b'b', b'i', b'n', b'a', b'r', b'y']),
                ),
            ),
            ("unread-multiline", Sms::new(SmsFolder::Inbox, false, "+15551230006", ts("2024-03-05T23:59:59-05"), SmsBody::Text("Line one\nLine two\n\nafter a blank line".into()))),
            ("header-like-text", text(SmsFolder::Draft, "+15551230007", None, "Date: tomorrow?\nEND:VBODY is just text")),
        ]
    }

    #[test]
    fn golden_files() {
        let update = std::env::var_os("IMSYNC_UPDATE_GOLDEN").is_some();
        for (name, sms) in golden_messages() {
            let path = dir().join(format!("{name}.vmg"));
            let out = write(&sms);
            if update {
                std::fs::write(&path, &out).unwrap();
            }
            let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want),
                "{name}"
            );
            assert_eq!(write(&sms), out, "{name}: not byte-stable");
            let back = parse(&want).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, sms, "{name}: round trip");
            assert_eq!(back.identity(), sms.identity());
        }
    }

    #[test]
    fn parses_the_servers_example() {
        // as recorded from the server's sms store (LF line ends)
        let data = "BEGIN:VMSG\nVERSION:1.1\nX-IRMC-STATUS:READ\nX-IRMC-BOX:INBOX\nBEGIN:VCARD\nVERSION:2.1\nTEL:+491701234501\nEND:VCARD\nBEGIN:VENV\nBEGIN:VBODY\nDate:2024-05-01T10:00:00Z\nHallo Jörg, SMS Nummer 1 äöü €\nEND:VBODY\nEND:VENV\nEND:VMSG\n";
        let sms = parse(data.as_bytes()).unwrap();
        assert_eq!(
            sms,
            text(
                SmsFolder::Inbox,
                "+491701234501",
                Some("2024-05-01T10:00:00Z"),
                "Hallo Jörg, SMS Nummer 1 äöü €"
            )
        );
    }

    #[test]
    fn tolerant_parsing() {
        // lower case, no status/box, parameters, recipient inside VENV for an outgoing message,
        // RFC 2822 date, extra properties
        let data = "begin:vmsg\r\nversion:1.1\r\nx-irmc-box:sentbox\r\nX-FOO:bar\r\nBEGIN:VCARD\r\nVERSION:2.1\r\nN:Me\r\nTEL;CELL:+100\r\nEND:VCARD\r\nBEGIN:VENV\r\nBEGIN:VCARD\r\nVERSION:2.1\r\nTEL;TYPE=CELL:+200\r\nEND:VCARD\r\nBEGIN:VENV\r\nbegin:vbody\r\nDate: Mon, 01 Jan 2024 08:00:00 +0200\r\nhi\r\nend:vbody\r\nEND:VENV\r\nEND:VENV\r\nend:vmsg\r\n";
        let sms = parse(data.as_bytes()).unwrap();
        assert_eq!(sms.folder(), SmsFolder::Sent);
        assert!(sms.read());
        assert_eq!(sms.number(), "+200");
        assert_eq!(
            sms.timestamp().unwrap().canonical(),
            "2024-01-01T08:00:00+02:00"
        );
        assert_eq!(sms.text(), Some("hi"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "BEGIN:VCARD\r\nEND:VCARD\r\n",
            "BEGIN:VMSG\r\nVERSION:1.1\r\n",
            "BEGIN:VMSG\r\nBEGIN:VENV\r\nBEGIN:VBODY\r\nx\r\n",
            "BEGIN:VMSG\r\nEND:VMSG\r\n",
            "BEGIN:VMSG\r\nX-IRMC-BOX:TRASH\r\nBEGIN:VENV\r\nBEGIN:VBODY\r\nx\r\nEND:VBODY\r\nEND:VENV\r\nEND:VMSG\r\n",
            "BEGIN:VMSG\r\nBEGIN:VENV\r\nBEGIN:VBODY\r\nDate:yesterday\r\nx\r\nEND:VBODY\r\nEND:VENV\r\nEND:VMSG\r\n",
            "BEGIN:VMSG\r\nBEGIN:VENV\r\nBEGIN:VBODY\r\nContent-Transfer-Encoding:base64\r\n!!!\r\nEND:VBODY\r\nEND:VENV\r\nEND:VMSG\r\n",
            "BEGIN:VMSG\r\nBEGIN:VENV\r\nEND:VCARD\r\nEND:VMSG\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(b"BEGIN:VMSG\r\n\xff\xfe\r\nEND:VMSG\r\n").is_err());
    }

    #[test]
    fn awkward_texts_round_trip() {
        for t in [
            "",
            "\n",
            "trailing newline\n",
            "cr\r\nlf",
            "tab\tand \u{1}control",
            "BEGIN:VCARD",
            "x\nend:vmsg",
            "Content-Type: text/plain",
            "  Date:",
            "\u{FEFF}bom",
            "a]]>b<c>&d",
        ] {
            let sms = text(SmsFolder::Draft, "+1", None, t);
            let back = parse(&write(&sms)).unwrap_or_else(|e| panic!("{t:?}: {e}"));
            assert_eq!(back, sms, "{t:?}");
        }
        let nl_number = Sms::new(
            SmsFolder::Inbox,
            true,
            "a\r\nb",
            None,
            SmsBody::Text("x".into()),
        );
        assert_eq!(parse(&write(&nl_number)).unwrap(), nl_number);
        let empty = Sms::new(
            SmsFolder::Inbox,
            true,
            "+1",
            None,
            SmsBody::Data(Vec::new()),
        );
        assert_eq!(parse(&write(&empty)).unwrap(), empty);
    }

    #[test]
    fn never_panics_on_mutations() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (_, sms) in golden_messages() {
            let good = write(&sms);
            for i in 0..good.len() {
                let _ = parse(&good[..i]);
            }
            for _ in 0..300 {
                let mut m = good.clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() % m.len() as u64) as usize;
                    match next() % 3 {
                        0 => m[i] = (next() & 0xff) as u8,
                        1 => {
                            m.remove(i);
                        }
                        _ => m.insert(i, b"\r\n:;BEGIN:VENV"[(next() % 14) as usize]),
                    }
                }
                let _ = parse(&m);
            }
        }
    }
}
