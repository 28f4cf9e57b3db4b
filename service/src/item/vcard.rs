//! vCard syntax: parsing (vCard 2.1 / 3.0, tolerant of 4.0) into [`Property`] lists, and
//! writing vCard 3.0 and 2.1.
//!
//! Hand-written on purpose. The `calcard` crate (Stalwart, 0.3.14) was evaluated first:
//! its writer emits vCard 2.1 as raw 8-bit UTF-8 with a `CHARSET` parameter and 3.0-style
//! escaping/folding, never QUOTED-PRINTABLE, which is what 2.1-only SyncML peers need; its
//! parser decodes QUOTED-PRINTABLE without a CHARSET as ISO-8859-1 (phones send UTF-8);
//! it normalises values into typed enums (dates, parameters), which makes a byte-stable,
//! lossless pass-through of unknown properties harder; and it pulls chrono-tz, mail-parser
//! and friends into a phone build. The syntax needed here is small, so it lives here.
//!
//! ## The canonical value form
//! A [`Property`] stores its value in the *vCard 3.0 escaped form*, whatever version it
//! was read from: `\n`, `\,`, `\;`, `\\` escapes, unescaped `;` separating components
//! and unescaped `,` separating list items. Binary values (`ENCODING=b`, 2.1 `BASE64`)
//! keep their base64 text without whitespace and carry the parameter `ENCODING=b`.
//! QUOTED-PRINTABLE, CHARSET, 7BIT and 8BIT are decoded on input and never stored.

use std::fmt::Write as _;

use super::{ItemError, WireFormat};

/// One parameter: upper-cased name, and its values (a comma list in 3.0 is split;
/// quotes are removed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    pub name: String,
    pub values: Vec<String>,
}

impl Param {
    pub fn new(name: &str, values: &[&str]) -> Param {
        Param {
            name: name.to_ascii_uppercase(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// One content line of a vCard, see the module documentation for the value form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Property {
    /// The group prefix (`item1` in `item1.TEL`), as written.
    pub group: Option<String>,
    /// Upper-cased property name.
    pub name: String,
    pub params: Vec<Param>,
    /// The value in vCard 3.0 escaped form (base64 text for binary values).
    pub value: String,
}

impl Property {
    /// A property without group or parameters holding `text` (escaped as vCard text).
    pub fn text(name: &str, text: &str) -> Property {
        Property {
            group: None,
            name: name.to_ascii_uppercase(),
            params: Vec::new(),
            value: escape_text(text),
        }
    }

    /// All values of the parameter `name` (case-insensitive), flattened.
    pub fn param_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |p| p.name.eq_ignore_ascii_case(name))
            .flat_map(|p| p.values.iter().map(String::as_str))
    }

    /// True if the parameter `name` has the value `value` (both case-insensitive).
    pub fn has_param_value(&self, name: &str, value: &str) -> bool {
        self.param_values(name)
            .any(|v| v.eq_ignore_ascii_case(value))
    }

    /// True if the value is binary (base64 text with `ENCODING=b`).
    pub fn is_binary(&self) -> bool {
        self.has_param_value("ENCODING", "b")
    }

    /// The value unescaped as one text.
    pub fn text_value(&self) -> String {
        unescape_text(&self.value)
    }
}

/// A parsed vCard: the `VERSION` it declared and every other property in order
/// (`BEGIN`, `END` and `VERSION` are not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCard {
    pub version: Option<String>,
    pub props: Vec<Property>,
}

// ------------------------------------------------------------------ escaping helpers

/// Escapes text for a vCard 3.0 value: `\` `,` `;` and newlines.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_text_into(&mut out, s);
    out
}

/// [`escape_text`], appended to `out`.
pub fn escape_text_into(out: &mut String, s: &str) {
    // Most values (names, numbers, addresses) need no escape.
    if !s.bytes().any(|b| matches!(b, b'\\' | b',' | b';' | b'\r' | b'\n')) {
        out.push_str(s);
        return;
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `v` without CR and LF (a copy; most values have none).
fn without_line_breaks(v: &str) -> String {
    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
        v.replace(['\r', '\n'], "")
    } else {
        v.to_owned()
    }
}

/// Undoes [`escape_text`]. Unknown escapes (`\x`) are kept as written.
pub fn unescape_text(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(',') => out.push(','),
            Some(';') => out.push(';'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Splits an escaped value at unescaped `sep` (`;` for components, `,` for lists),
/// without unescaping the parts.
pub fn split_escaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

// ------------------------------------------------------------------ parsing

/// Properties whose unescaped commas separate list items in every version.
fn is_list_property(name: &str) -> bool {
    matches!(name, "CATEGORIES" | "NICKNAME")
}

/// Parses exactly one vCard. The `VERSION` line decides the syntax; `hint` is used only
/// when it is missing.
pub fn parse(data: &[u8], hint: WireFormat) -> Result<RawCard, ItemError> {
    let lines = logical_lines(data);
    let mut iter = lines
        .iter()
        .filter(|l| !l.bytes.iter().all(u8::is_ascii_whitespace));

    let first = iter
        .next()
        .ok_or_else(|| ItemError::Malformed("empty input".into()))?;
    let first = parse_line(first)?;
    if first.name != "BEGIN" || !first.raw_value.trim_ascii().eq_ignore_ascii_case(b"VCARD") {
        return Err(ItemError::Malformed(format!(
            "expected BEGIN:VCARD, found a {} line",
            first.name
        )));
    }

    let mut parsed = Vec::with_capacity(lines.len());
    let mut ended = false;
    for line in iter.by_ref() {
        let line = parse_line(line)?;
        match line.name.as_str() {
            "END" if line.raw_value.trim_ascii().eq_ignore_ascii_case(b"VCARD") => {
                ended = true;
                break;
            }
            "BEGIN" if line.raw_value.trim_ascii().eq_ignore_ascii_case(b"VCARD") => {
                return Err(ItemError::Malformed(format!(
                    "nested vCard in line {} (2.1 AGENT cards are not supported)",
                    line.number
                )));
            }
            _ => parsed.push(line),
        }
    }
    if !ended {
        return Err(ItemError::Malformed("missing END:VCARD".into()));
    }
    if let Some(extra) = iter.next() {
        return Err(ItemError::Malformed(format!(
            "unexpected content after END:VCARD in line {} (only one vCard per item)",
            extra.number
        )));
    }

    let version = parsed
        .iter()
        .find(|l| l.name == "VERSION")
        .map(|l| String::from_utf8_lossy(l.raw_value.trim_ascii()).into_owned());
    let legacy = match version.as_deref() {
        Some("2.1") | Some("2.0") => true,
        Some(_) => false,
        None => matches!(hint, WireFormat::VCard21),
    };

    let mut props = Vec::with_capacity(parsed.len());
    for line in parsed {
        if line.name == "VERSION" {
            continue;
        }
        props.push(decode_value(line, legacy)?);
    }
    Ok(RawCard { version, props })
}

/// A logical (unfolded) line with the number of its first physical line.
pub(crate) struct Logical<'a> {
    pub number: usize,
    /// The line as in the input; a copy only when it was folded.
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

/// The part of a line before the value separator, used to detect encodings while
/// unfolding.
fn line_header(line: &[u8]) -> &[u8] {
    let mut quoted = false;
    for (i, b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b':' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Whether a parameter of `header` names `encoding` (`ENCODING=X`, `X` in a list, or a bare
/// 2.1 `X`), ignoring ASCII case.
fn has_encoding(header: &[u8], encoding: &[u8]) -> bool {
    header.split(|&b| b == b';').skip(1).any(|param| {
        let values = match param.iter().position(|&b| b == b'=') {
            Some(eq) => &param[eq + 1..],
            None => param,
        };
        values.split(|&b| b == b',').any(|v| {
            let v = v.trim_ascii();
            let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
            v.eq_ignore_ascii_case(encoding)
        })
    })
}

/// Splits into physical lines (CRLF, LF or CR), then unfolds: a line starting with a
/// space or tab continues the previous one (that one whitespace character is removed);
/// a QUOTED-PRINTABLE line ending in `=` continues on the next line (soft break); a
/// 2.1 BASE64 value continues over following lines that hold no `:` up to a blank line.
pub(crate) fn logical_lines(data: &[u8]) -> Vec<Logical<'_>> {
    // ~30 bytes per line in a typical card: one allocation instead of a growing vector
    let mut physical: Vec<&[u8]> = Vec::with_capacity(data.len() / 24 + 4);
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\n' => {
                physical.push(&data[start..i]);
                start = i + 1;
            }
            b'\r' => {
                physical.push(&data[start..i]);
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < data.len() {
        physical.push(&data[start..]);
    }

    let mut out: Vec<Logical> = Vec::with_capacity(physical.len());
    // Whether the current logical line is QP / base64 encoded (decided once per line).
    let mut qp = false;
    let mut b64 = false;
    for (n, line) in physical.into_iter().enumerate() {
        let number = n + 1;
        if let Some(last) = out.last_mut() {
            // A soft break first: the next line may start with an encoded space.
            if qp && last.bytes.last() == Some(&b'=') {
                let bytes = last.bytes.to_mut();
                bytes.pop();
                bytes.extend_from_slice(line);
                continue;
            }
            if matches!(line.first(), Some(b' ') | Some(b'\t')) {
                last.bytes.to_mut().extend_from_slice(&line[1..]);
                continue;
            }
            if b64 && !line.is_empty() && !line.contains(&b':') {
                last.bytes.to_mut().extend_from_slice(line);
                continue;
            }
        }
        let header = line_header(line);
        qp = has_encoding(header, b"QUOTED-PRINTABLE");
        b64 = has_encoding(header, b"BASE64");
        out.push(Logical {
            number,
            bytes: std::borrow::Cow::Borrowed(line),
        });
    }
    out
}

/// A content line split into its parts; the value is still raw bytes.
pub(crate) struct RawLine {
    pub number: usize,
    pub group: Option<String>,
    pub name: String,
    pub params: Vec<Param>,
    pub raw_value: Vec<u8>,
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

pub(crate) fn parse_line(line: &Logical) -> Result<RawLine, ItemError> {
    let bytes = &line.bytes;
    let malformed = |what: &str| ItemError::Malformed(format!("line {}: {what}", line.number));

    // The name (with optional group) ends at ';' or ':'.
    let name_end = bytes
        .iter()
        .position(|&b| b == b';' || b == b':')
        .ok_or_else(|| malformed("no ':' separating name and value"))?;
    let full_name = &bytes[..name_end];
    let full_name = std::str::from_utf8(full_name)
        .map_err(|_| malformed("property name is not ASCII"))?
        .trim();
    let (group, name) = match full_name.rsplit_once('.') {
        Some((g, n)) => (Some(g.to_string()), n),
        None => (None, full_name),
    };
    if name.is_empty() || !name.bytes().all(is_name_char) {
        return Err(malformed(&format!("invalid property name '{full_name}'")));
    }
    if let Some(g) = &group {
        if g.is_empty() || !g.bytes().all(|b| is_name_char(b) || b == b'.') {
            return Err(malformed(&format!("invalid group in '{full_name}'")));
        }
    }
    let name = name.to_ascii_uppercase();

    // Parameters up to the first ':' outside quotes.
    let mut params: Vec<Param> = Vec::new();
    let mut pos = name_end;
    while bytes.get(pos) == Some(&b';') {
        pos += 1;
        // parameter name (or bare 2.1 value)
        let start = pos;
        while pos < bytes.len() && !matches!(bytes[pos], b'=' | b';' | b':') {
            pos += 1;
        }
        let pname_raw = String::from_utf8_lossy(&bytes[start..pos]);
        let pname = pname_raw.trim();
        if pos >= bytes.len() {
            return Err(malformed("no ':' after the parameters"));
        }
        if bytes[pos] != b'=' {
            if !pname.is_empty() {
                params.push(bare_param(pname));
            }
            continue;
        }
        pos += 1; // '='
        let mut values = Vec::new();
        loop {
            let mut value = Vec::new();
            if bytes.get(pos) == Some(&b'"') {
                pos += 1;
                while pos < bytes.len() && bytes[pos] != b'"' {
                    value.push(bytes[pos]);
                    pos += 1;
                }
                if pos >= bytes.len() {
                    return Err(malformed("unterminated quoted parameter value"));
                }
                pos += 1; // closing quote
                          // Anything up to the next separator is appended (lenient).
                while pos < bytes.len() && !matches!(bytes[pos], b',' | b';' | b':') {
                    value.push(bytes[pos]);
                    pos += 1;
                }
            } else {
                while pos < bytes.len() && !matches!(bytes[pos], b',' | b';' | b':') {
                    value.push(bytes[pos]);
                    pos += 1;
                }
            }
            values.push(String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(_) => break,
                None => return Err(malformed("no ':' after the parameters")),
            }
        }
        if pname.is_empty() {
            return Err(malformed("parameter without a name"));
        }
        let pname = pname.to_ascii_uppercase();
        if pname == "TYPE" {
            for v in values.iter_mut() {
                v.make_ascii_uppercase();
            }
        }
        params.push(Param {
            name: pname,
            values,
        });
    }
    if bytes.get(pos) != Some(&b':') {
        return Err(malformed("no ':' separating name and value"));
    }
    Ok(RawLine {
        number: line.number,
        group,
        name,
        params,
        raw_value: bytes[pos + 1..].to_vec(),
    })
}

/// vCard 2.1 allows parameter values without a name (`TEL;CELL;PREF:`).
fn bare_param(value: &str) -> Param {
    let upper = value.to_ascii_uppercase();
    let name = match upper.as_str() {
        "QUOTED-PRINTABLE" | "BASE64" | "B" | "7BIT" | "8BIT" => "ENCODING",
        "INLINE" | "URL" | "URI" | "CONTENT-ID" | "CID" => "VALUE",
        _ => "TYPE",
    };
    Param {
        name: name.into(),
        values: vec![upper],
    }
}

/// Decodes the raw value (transfer encoding, charset, 2.1 escaping) into the canonical
/// form and normalises the parameters.
pub(crate) fn decode_value(line: RawLine, legacy: bool) -> Result<Property, ItemError> {
    let RawLine {
        number,
        group,
        name,
        params,
        raw_value,
    } = line;
    let mut encoding: Option<String> = None;
    let mut charset: Option<String> = None;
    let mut kept = Vec::with_capacity(params.len());
    for p in params {
        match p.name.as_str() {
            "ENCODING" => encoding = p.values.first().map(|v| v.to_ascii_uppercase()),
            "CHARSET" => charset = p.values.first().map(|v| v.to_ascii_uppercase()),
            _ => kept.push(p),
        }
    }

    let binary = matches!(encoding.as_deref(), Some("B") | Some("BASE64"));
    let value = if binary {
        kept.push(Param::new("ENCODING", &["b"]));
        raw_value
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|&b| b as char)
            .collect::<String>()
    } else {
        let bytes = match encoding.as_deref() {
            Some("QUOTED-PRINTABLE") => qp_decode(&raw_value),
            None | Some("7BIT") | Some("8BIT") => raw_value,
            Some(other) => {
                return Err(ItemError::Malformed(format!(
                    "line {number}: unsupported ENCODING={other} on {name}"
                )));
            }
        };
        let text = decode_charset(bytes, charset.as_deref(), legacy)
            .map_err(|e| ItemError::Malformed(format!("line {number}: {name}: {e}")))?;
        if legacy {
            legacy_to_canonical(&text, is_list_property(&name))
        } else {
            // 3.0 has no raw newlines in values; a QP-encoded one is a line break.
            if text.bytes().any(|b| b == b'\r' || b == b'\n') {
                text.replace("\r\n", "\\n").replace(['\r', '\n'], "\\n")
            } else {
                text
            }
        }
    };
    Ok(Property {
        group,
        name,
        params: kept,
        value,
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// QUOTED-PRINTABLE decoding; malformed `=` sequences are kept literally.
pub fn qp_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'=' {
            match (data.get(i + 1), data.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// windows-1252 code points for 0x80..=0x9F (undefined ones map to the C1 control).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

fn decode_single_byte(bytes: &[u8], cp1252: bool) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F if cp1252 => CP1252_HIGH[(b - 0x80) as usize],
            _ => b as char,
        })
        .collect()
}

/// Decodes value bytes. Supported: UTF-8 (the default), US-ASCII, ISO-8859-1 and
/// windows-1252. vCard 2.1 data that is not valid UTF-8 and declares no charset is read
/// as windows-1252 (what old phones send); in 3.0 it is an error.
fn decode_charset(bytes: Vec<u8>, charset: Option<&str>, legacy: bool) -> Result<String, String> {
    match charset {
        None | Some("UTF-8") | Some("UTF8") | Some("US-ASCII") | Some("ASCII") => {
            // The bytes become the string (no copy).
            match String::from_utf8(bytes) {
                Ok(s) => Ok(s),
                Err(e) if legacy && charset.is_none() => Ok(decode_single_byte(e.as_bytes(), true)),
                Err(e) => Err(format!("value is not valid UTF-8 ({})", e.utf8_error())),
            }
        }
        Some("ISO-8859-1") | Some("ISO8859-1") | Some("LATIN1") | Some("ISO-8859-15") => {
            Ok(decode_single_byte(&bytes, false))
        }
        Some("WINDOWS-1252") | Some("CP1252") => Ok(decode_single_byte(&bytes, true)),
        Some(other) => Err(format!("unsupported CHARSET={other}")),
    }
}

/// Converts a decoded vCard 2.1 value to the canonical (3.0 escaped) form: known escapes
/// stay, a lone backslash becomes `\\`, line breaks become `\n`, and commas become `\,`
/// unless the property is a comma list.
fn legacy_to_canonical(s: &str, list: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n) if matches!(n, ';' | '\\' | ',' | 'n' | 'N') => {
                    out.push('\\');
                    out.push(n);
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            ',' if !list => out.push_str("\\,"),
            c => out.push(c),
        }
    }
    out
}

/// Converts a canonical value to vCard 2.1 text: `\n` becomes a real line break, `\,`
/// a plain comma; `\;` and `\\` stay escaped.
fn canonical_to_legacy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push_str("\r\n"),
            Some(',') => out.push(','),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push_str("\\\\"),
        }
    }
    out
}

// ------------------------------------------------------------------ writing

/// What a property to be written holds; the writer escapes it for the target version.
#[derive(Debug, Clone)]
pub(crate) enum OutValue {
    /// One text (unescaped).
    Text(String),
    /// Components separated by `;` (each unescaped).
    Structured(Vec<String>),
    /// Items separated by `,` (each unescaped).
    List(Vec<String>),
    /// A value in the canonical form, written as is (3.0) or converted (2.1).
    Canonical(String),
    /// A value written without any escaping (dates, URIs, REV).
    Verbatim(String),
    /// Binary data, written base64-encoded with `ENCODING=b` (3.0) / `BASE64` (2.1).
    Binary(Vec<u8>),
    /// Base64 text already encoded (an unknown binary property passed through).
    Base64(String),
}

#[derive(Debug, Clone)]
pub(crate) struct OutProp {
    pub group: Option<String>,
    /// Mostly one of the names we write (no allocation), else a passed-through name.
    pub name: std::borrow::Cow<'static, str>,
    pub params: Vec<Param>,
    pub value: OutValue,
}

impl OutProp {
    pub fn new(name: &'static str, value: OutValue) -> OutProp {
        OutProp {
            group: None,
            name: std::borrow::Cow::Borrowed(name),
            params: Vec::new(),
            value,
        }
    }

    pub fn with_types(mut self, types: Vec<String>, pref: bool) -> OutProp {
        let mut values = types;
        if pref {
            values.push("PREF".into());
        }
        if !values.is_empty() {
            self.params.push(Param {
                name: "TYPE".into(),
                values,
            });
        }
        self
    }

    /// A passed-through property from the canonical form.
    pub fn from_property(p: Property) -> OutProp {
        let binary = p.is_binary();
        OutProp {
            group: p.group,
            name: std::borrow::Cow::Owned(p.name),
            params: p.params.into_iter().filter(|q| !(binary && q.name == "ENCODING")).collect(),
            value: if binary { OutValue::Base64(p.value) } else { OutValue::Canonical(p.value) },
        }
    }
}

const FOLD: usize = 75;

/// Writes a vCard: `BEGIN`, `VERSION`, the properties in order, `END`, CRLF line ends.
pub(crate) fn write(props: &[OutProp], format: WireFormat) -> Vec<u8> {
    let format = match format {
        WireFormat::VCard21 => WireFormat::VCard21,
        _ => WireFormat::VCard30,
    };
    let mut out = String::with_capacity(64 + props.len() * 48);
    out.push_str("BEGIN:VCARD\r\nVERSION:");
    out.push_str(format.version());
    out.push_str("\r\n");
    for p in props {
        match format {
            WireFormat::VCard30 => write_prop_30(&mut out, p),
            _ => write_prop_21(&mut out, p),
        }
    }
    out.push_str("END:VCARD\r\n");
    out.into_bytes()
}

pub(crate) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Quotes a 3.0 parameter value when it holds `,` `;` or `:`; `"` cannot be represented
/// and becomes `'`.
fn param_value_30(v: &str) -> String {
    let v = v.replace('"', "'");
    if v.contains([',', ';', ':']) {
        format!("\"{v}\"")
    } else {
        v
    }
}

fn header(out: &mut String, p: &OutProp) {
    if let Some(g) = &p.group {
        out.push_str(g);
        out.push('.');
    }
    out.push_str(&p.name);
}

fn write_prop_30(out: &mut String, p: &OutProp) {
    // The logical line is built in place (no copy per part), then folded into `out`.
    let mut line = String::with_capacity(128);
    header(&mut line, p);
    if matches!(p.value, OutValue::Binary(_) | OutValue::Base64(_)) {
        line.push_str(";ENCODING=b");
    }
    for param in &p.params {
        line.push(';');
        line.push_str(&param.name);
        for (i, v) in param.values.iter().enumerate() {
            line.push(if i == 0 { '=' } else { ',' });
            if v.contains(['"', ',', ';', ':']) {
                line.push_str(&param_value_30(v));
            } else {
                line.push_str(v);
            }
        }
    }
    line.push(':');
    let join = |line: &mut String, parts: &[String], sep: char| {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                line.push(sep);
            }
            escape_text_into(line, part);
        }
    };
    match &p.value {
        OutValue::Text(t) => escape_text_into(&mut line, t),
        OutValue::Structured(parts) => join(&mut line, parts, ';'),
        OutValue::List(items) => join(&mut line, items, ','),
        OutValue::Canonical(v) | OutValue::Verbatim(v) => {
            if v.bytes().any(|b| b == b'\r' || b == b'\n') {
                line.push_str(&without_line_breaks(v));
            } else {
                line.push_str(v);
            }
        }
        OutValue::Binary(data) => line.push_str(&base64_encode(data)),
        OutValue::Base64(b) => line.push_str(b),
    }
    fold_30(out, &line);
}

/// Folds one logical line at 75 octets (continuation lines start with a space, which
/// counts), never inside a UTF-8 sequence.
pub(crate) fn fold_30(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = FOLD;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        limit = FOLD - 1;
    }
}

/// 2.1 text escaping: `\` and `;` (commas are not special in 2.1), line breaks as CRLF.
fn escape_21(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    out
}

fn write_prop_21(out: &mut String, p: &OutProp) {
    let mut line = String::new();
    header(&mut line, p);
    let binary = matches!(p.value, OutValue::Binary(_) | OutValue::Base64(_));
    if binary {
        line.push_str(";ENCODING=BASE64");
    }
    for param in &p.params {
        if param.name == "TYPE" && !binary {
            // The classic 2.1 form: bare type values.
            for v in &param.values {
                line.push(';');
                line.push_str(&v.replace([';', ':', ',', '"'], ""));
            }
            continue;
        }
        line.push(';');
        line.push_str(&param.name);
        if !param.values.is_empty() {
            line.push('=');
            let vals: Vec<String> = param
                .values
                .iter()
                .map(|v| v.replace([';', ':', '"'], ""))
                .collect();
            line.push_str(&vals.join(","));
        }
    }
    let value = match &p.value {
        OutValue::Text(t) => escape_21(t),
        OutValue::Structured(parts) => parts
            .iter()
            .map(|s| escape_21(s))
            .collect::<Vec<_>>()
            .join(";"),
        OutValue::List(items) => items
            .iter()
            .map(|s| escape_21(s).replace(',', "\\,"))
            .collect::<Vec<_>>()
            .join(","),
        OutValue::Canonical(v) => canonical_to_legacy(v),
        OutValue::Verbatim(v) => without_line_breaks(v),
        OutValue::Binary(data) => return write_base64_21(out, line, &base64_encode(data)),
        OutValue::Base64(b) => return write_base64_21(out, line, b),
    };
    if value.is_ascii() && !value.contains(['\r', '\n']) {
        // No folding in 2.1: its unfolding keeps the whitespace, so a fold would change
        // the value for a strict reader.
        line.push(':');
        line.push_str(&value);
        out.push_str(&line);
        out.push_str("\r\n");
        return;
    }
    line.push_str(";ENCODING=QUOTED-PRINTABLE");
    if !value.is_ascii() {
        line.push_str(";CHARSET=UTF-8");
    }
    line.push(':');
    qp_encode_into(out, &line, value.as_bytes());
}

fn write_base64_21(out: &mut String, mut line: String, b64: &str) {
    line.push(':');
    out.push_str(&line);
    out.push_str("\r\n");
    // Base64 on continuation lines (ignored whitespace), then the blank line 2.1 readers
    // expect after a BASE64 value.
    for chunk in b64.as_bytes().chunks(FOLD - 1) {
        out.push(' ');
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
}

/// Appends `prefix` and the QUOTED-PRINTABLE encoding of `data`, with soft line breaks so
/// that no line exceeds 75 octets (including the trailing `=`).
pub(crate) fn qp_encode_into(out: &mut String, prefix: &str, data: &[u8]) {
    let mut line_len = prefix.len();
    out.push_str(prefix);
    for (i, &b) in data.iter().enumerate() {
        let last = i + 1 == data.len();
        let encoded_len = if b.is_ascii_graphic() && b != b'=' {
            1
        } else {
            3
        };
        // Keep room for the soft-break '='.
        if line_len + encoded_len > FOLD - 1 {
            out.push_str("=\r\n");
            line_len = 0;
        }
        // A space is literal except at the end of the value or at the start of a
        // continuation line (where a reader could take it for folding).
        let literal = (b.is_ascii_graphic() && b != b'=') || (b == b' ' && !last && line_len > 0);
        let mut token = String::new();
        if literal {
            token.push(b as char);
        } else {
            let _ = write!(token, "={b:02X}");
        }
        out.push_str(&token);
        line_len += token.len();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for s in ["a,b;c\\d\ne", "", "\\", "plain", "ünï;cödé,\n"] {
            assert_eq!(unescape_text(&escape_text(s)), s);
        }
        assert_eq!(escape_text("a,b;c\\d\r\ne"), "a\\,b\\;c\\\\d\\ne");
        assert_eq!(unescape_text("x\\Ny\\q"), "x\ny\\q");
    }

    #[test]
    fn split_respects_escapes() {
        assert_eq!(split_escaped("a\\;b;c;;", ';'), vec!["a\\;b", "c", "", ""]);
        assert_eq!(split_escaped("x\\\\;y", ';'), vec!["x\\\\", "y"]);
    }

    #[test]
    fn qp_round_trip() {
        let data = "Grüße\r\nline two = ok ".as_bytes();
        let mut out = String::new();
        qp_encode_into(&mut out, "", data);
        assert!(out.ends_with("=20\r\n"), "{out}");
        let body = out.trim_end_matches("\r\n");
        assert_eq!(qp_decode(body.as_bytes()), data);
        assert_eq!(qp_decode(b"a=3Db=ZZ="), b"a=b=ZZ=");
    }

    #[test]
    fn qp_lines_are_short() {
        let long = "é".repeat(100);
        let mut out = String::new();
        qp_encode_into(
            &mut out,
            "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:",
            long.as_bytes(),
        );
        for l in out.split("\r\n") {
            assert!(l.len() <= FOLD, "{} > 75: {l}", l.len());
        }
        let joined = out.replace("=\r\n", "");
        let value = joined.split_once(':').unwrap().1.trim_end();
        assert_eq!(qp_decode(value.as_bytes()), long.as_bytes());
    }

    #[test]
    fn fold_never_splits_characters() {
        for s in [
            "a".repeat(200),
            "漢".repeat(90),
            format!("x{}", "ж".repeat(120)),
        ] {
            let mut out = String::new();
            fold_30(&mut out, &s);
            for l in out.split("\r\n") {
                assert!(l.len() <= FOLD);
            }
            let unfolded = out.trim_end_matches("\r\n").replace("\r\n ", "");
            assert_eq!(unfolded, s);
        }
    }

    #[test]
    fn bare_21_params() {
        let card = parse(
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nTEL;CELL;PREF:+1\r\nNOTE;QUOTED-PRINTABLE;UTF-8:x\r\nEND:VCARD\r\n",
            WireFormat::VCard21,
        )
        .unwrap();
        assert_eq!(
            card.props[0].params,
            vec![Param::new("TYPE", &["CELL"]), Param::new("TYPE", &["PREF"])]
        );
        // "UTF-8" as a bare parameter is taken as a type, harmlessly.
        assert_eq!(card.props[1].value, "x");
    }

    #[test]
    fn quoted_params_and_groups() {
        let card = parse(
            b"BEGIN:VCARD\nVERSION:3.0\nitem1.X-ABLABEL;X-P=\"a;b:c\",d:hi\nEND:VCARD",
            WireFormat::VCard30,
        )
        .unwrap();
        let p = &card.props[0];
        assert_eq!(p.group.as_deref(), Some("item1"));
        assert_eq!(p.name, "X-ABLABEL");
        assert_eq!(p.params[0].values, vec!["a;b:c", "d"]);
        assert_eq!(p.value, "hi");
    }

    #[test]
    fn malformed_inputs_error() {
        let cases: &[&[u8]] = &[
            b"",
            b"\r\n\r\n",
            b"hello",
            b"BEGIN:VCARD\r\nFN:x\r\n",
            b"BEGIN:VCARD\r\nno colon here\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nFN;X=\"open:x\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\n:novalue\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nFN:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\xff\xfe\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nAGENT:\r\nBEGIN:VCARD\r\nEND:VCARD\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=KOI8-R:x\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD\r\nFN;ENCODING=X-FOO:x\r\nEND:VCARD\r\n",
            b"END:VCARD\r\n",
            b"BEGIN:VCARD\r\nF\xc3\xa9N:x\r\nEND:VCARD\r\n",
        ];
        for c in cases {
            assert!(
                parse(c, WireFormat::VCard30).is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn legacy_8bit_falls_back_to_cp1252() {
        let card = parse(
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN:J\xfcrgen \x80\r\nEND:VCARD\r\n",
            WireFormat::VCard21,
        )
        .unwrap();
        assert_eq!(card.props[0].value, "Jürgen €");
    }
}
