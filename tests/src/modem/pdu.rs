//! A small SMS PDU codec (3GPP TS 23.038 / 23.040) for the fake modem: SMS-DELIVER and
//! SMS-SUBMIT, GSM 7-bit (with the extension table), UCS-2 (UTF-16, surrogate pairs) and
//! 8-bit data, concatenation (8-bit reference UDH), international / national /
//! alphanumeric addresses, SMSC timestamps with quarter-hour offsets.

/// The GSM 7-bit default alphabet (0x1B is the escape to the extension table).
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', 'Δ', '_',
    'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\x1b', 'Æ', 'æ', 'ß', 'É', ' ', '!', '"', '#',
    '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6',
    '7', '8', '9', ':', ';', '<', '=', '>', '?', '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I',
    'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö',
    'Ñ', 'Ü', '§', '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table: (character, code after 0x1B).
const GSM7_EXT: [(char, u8); 10] = [
    ('\x0c', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// Septets of one character, or `None` if GSM 7-bit cannot carry it.
fn char_septets(c: char) -> Option<Vec<u8>> {
    if c != '\x1b' {
        if let Some(i) = GSM7_BASIC.iter().position(|&x| x == c) {
            return Some(vec![i as u8]);
        }
    }
    GSM7_EXT
        .iter()
        .find(|(x, _)| *x == c)
        .map(|&(_, code)| vec![0x1B, code])
}

/// Text → septets, or `None` if some character is not in GSM 7-bit.
pub fn gsm7_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for c in text.chars() {
        out.extend(char_septets(c)?);
    }
    Some(out)
}

pub fn gsm7_text(septets: &[u8]) -> String {
    let mut out = String::new();
    let mut esc = false;
    for &s in septets {
        if esc {
            out.push(
                GSM7_EXT
                    .iter()
                    .find(|(_, code)| *code == s)
                    .map_or(' ', |(c, _)| *c),
            );
            esc = false;
        } else if s == 0x1B {
            esc = true;
        } else {
            out.push(GSM7_BASIC[usize::from(s & 0x7F)]);
        }
    }
    out
}

/// Packs septets after `udh` (incl. its length byte), with fill bits to a septet boundary.
/// Returns the user data and its length in septets (TP-UDL).
pub fn pack_septets(septets: &[u8], udh: &[u8]) -> (Vec<u8>, usize) {
    let udh_bits = udh.len() * 8;
    let start = udh_bits + (7 - udh_bits % 7) % 7;
    let total_bits = start + 7 * septets.len();
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    out[..udh.len()].copy_from_slice(udh);
    for (i, &s) in septets.iter().enumerate() {
        for b in 0..7 {
            if s & (1 << b) != 0 {
                let bit = start + 7 * i + b;
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    (out, total_bits / 7)
}

pub fn unpack_septets(data: &[u8], udl: usize, udh_len: usize) -> Vec<u8> {
    let udh_bits = udh_len * 8;
    let start = udh_bits + (7 - udh_bits % 7) % 7;
    let n = udl.saturating_sub(start / 7);
    (0..n)
        .map(|i| {
            let mut s = 0u8;
            for b in 0..7 {
                let bit = start + 7 * i + b;
                if data
                    .get(bit / 8)
                    .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
                {
                    s |= 1 << b;
                }
            }
            s
        })
        .collect()
}

/// Semi-octet swapped BCD of a digit string (F-padded).
fn bcd_swapped(digits: &str) -> Vec<u8> {
    let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    d.chunks(2)
        .map(|c| c[0] | (c.get(1).copied().unwrap_or(0x0F) << 4))
        .collect()
}

/// TP-OA / TP-DA: length in semi-octets, type of address, value.
pub fn encode_address(number: &str) -> Vec<u8> {
    let (digits, toa) = match number.strip_prefix('+') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => (d, 0x91),
        _ if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => (number, 0x81),
        _ => {
            // alphanumeric, GSM 7-bit packed
            let sept = gsm7_septets(number).unwrap_or_else(|| vec![0x3F; number.chars().count()]);
            let (data, _) = pack_septets(&sept, &[]);
            let nsemi = (sept.len() * 7).div_ceil(4);
            let mut out = vec![nsemi as u8, 0xD0];
            out.extend(data);
            return out;
        }
    };
    let mut out = vec![digits.len() as u8, toa];
    out.extend(bcd_swapped(digits));
    out
}

pub fn encode_smsc(number: &str) -> Vec<u8> {
    let mut body = vec![0x91];
    body.extend(bcd_swapped(number.trim_start_matches('+')));
    let mut out = vec![body.len() as u8];
    out.extend(body);
    out
}

/// A local date and time with its UTC offset (minutes, a multiple of 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scts {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub offset_minutes: i16,
}

impl Scts {
    /// The way ModemManager prints it (GLib `g_date_time_format_iso8601`):
    /// `…Z`, `…+02`, `…+05:30`.
    pub fn glib_iso8601(&self) -> String {
        let base = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.offset_minutes == 0 {
            return base + "Z";
        }
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let m = self.offset_minutes.unsigned_abs();
        if m.is_multiple_of(60) {
            format!("{base}{sign}{:02}", m / 60)
        } else {
            format!("{base}{sign}{:02}:{:02}", m / 60, m % 60)
        }
    }

    /// RFC 3339 with the offset (what imsync writes as the vMessage `Date:`).
    pub fn rfc3339(&self) -> String {
        let base = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.offset_minutes == 0 {
            return base + "Z";
        }
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let m = self.offset_minutes.unsigned_abs();
        format!("{base}{sign}{:02}:{:02}", m / 60, m % 60)
    }

    /// UTC time `unix` seconds as an SCTS with offset 0.
    pub fn from_unix_utc(unix: u64) -> Scts {
        let days = (unix / 86_400) as i64;
        let secs = unix % 86_400;
        // civil from days (Howard Hinnant)
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
        Scts {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
            offset_minutes: 0,
        }
    }

    pub fn encode(&self) -> [u8; 7] {
        let bcd = |v: u8| (v % 10) << 4 | (v / 10);
        let q = (self.offset_minutes.unsigned_abs() / 15) as u8;
        let mut tz = bcd(q);
        if self.offset_minutes < 0 {
            tz |= 0x08;
        }
        [
            bcd((self.year % 100) as u8),
            bcd(self.month),
            bcd(self.day),
            bcd(self.hour),
            bcd(self.minute),
            bcd(self.second),
            tz,
        ]
    }

    pub fn decode(b: &[u8]) -> Option<Scts> {
        if b.len() < 7 {
            return None;
        }
        let bcd = |x: u8| (x & 0x0F) * 10 + (x >> 4);
        let mut q = i16::from((b[6] & 0x07) * 10 + (b[6] >> 4));
        if b[6] & 0x08 != 0 {
            q = -q;
        }
        Some(Scts {
            year: 2000 + u16::from(bcd(b[0])),
            month: bcd(b[1]),
            day: bcd(b[2]),
            hour: bcd(b[3]),
            minute: bcd(b[4]),
            second: bcd(b[5]),
            offset_minutes: q * 15,
        })
    }
}

/// The body of a message to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Data(Vec<u8>),
}

/// DCS and the per-part payloads (septets for GSM 7-bit, bytes otherwise).
fn split_segments(body: &Body) -> (u8, Vec<Vec<u8>>) {
    match body {
        Body::Data(d) if d.len() <= 140 => (0x04, vec![d.clone()]),
        Body::Data(d) => (0x04, d.chunks(134).map(<[u8]>::to_vec).collect()),
        Body::Text(t) => {
            if let Some(sept) = gsm7_septets(t) {
                if sept.len() <= 160 {
                    return (0x00, vec![sept]);
                }
                // split between characters (an escape pair never straddles parts)
                let mut segs = vec![];
                let mut cur: Vec<u8> = vec![];
                for c in t.chars() {
                    let cs = char_septets(c).unwrap_or_default();
                    if cur.len() + cs.len() > 153 {
                        segs.push(std::mem::take(&mut cur));
                    }
                    cur.extend(cs);
                }
                segs.push(cur);
                return (0x00, segs);
            }
            let units: Vec<u8> = t.encode_utf16().flat_map(u16::to_be_bytes).collect();
            if units.len() <= 140 {
                return (0x08, vec![units]);
            }
            let mut segs = vec![];
            let mut cur: Vec<u8> = vec![];
            for c in t.chars() {
                let mut buf = [0u16; 2];
                let cb: Vec<u8> = c
                    .encode_utf16(&mut buf)
                    .iter()
                    .flat_map(|u| u.to_be_bytes())
                    .collect();
                if cur.len() + cb.len() > 134 {
                    segs.push(std::mem::take(&mut cur));
                }
                cur.extend(cb);
            }
            segs.push(cur);
            (0x08, segs)
        }
    }
}

fn user_data(dcs: u8, payload: &[u8], udh: &[u8]) -> (Vec<u8>, usize) {
    if dcs == 0x00 {
        return pack_septets(payload, udh);
    }
    let mut d = udh.to_vec();
    d.extend_from_slice(payload);
    let n = d.len();
    (d, n)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// SMS-DELIVER PDU(s) (hex, with SMSC) of a received message.
pub fn deliver_pdus(
    number: &str,
    body: &Body,
    when: &Scts,
    concat_ref: u8,
    smsc: &str,
) -> Vec<String> {
    let (dcs, segs) = split_segments(body);
    let n = segs.len();
    segs.iter()
        .enumerate()
        .map(|(i, seg)| {
            let udh = if n > 1 {
                vec![5, 0x00, 0x03, concat_ref, n as u8, (i + 1) as u8]
            } else {
                vec![]
            };
            let (ud, udl) = user_data(dcs, seg, &udh);
            let mut p = encode_smsc(smsc);
            p.push(0x04 | if udh.is_empty() { 0 } else { 0x40 });
            p.extend(encode_address(number));
            p.extend([0x00, dcs]);
            p.extend(when.encode());
            p.push(udl as u8);
            p.extend(ud);
            hex(&p)
        })
        .collect()
}

/// SMS-SUBMIT PDU(s) (hex, empty SMSC) of a sent message or draft.
pub fn submit_pdus(number: &str, body: &Body, concat_ref: u8) -> Vec<String> {
    let (dcs, segs) = split_segments(body);
    let n = segs.len();
    segs.iter()
        .enumerate()
        .map(|(i, seg)| {
            let udh = if n > 1 {
                vec![5, 0x00, 0x03, concat_ref, n as u8, (i + 1) as u8]
            } else {
                vec![]
            };
            let (ud, udl) = user_data(dcs, seg, &udh);
            let mut p = vec![0x00, 0x01 | if udh.is_empty() { 0 } else { 0x40 }, 0x00];
            p.extend(encode_address(number));
            p.extend([0x00, dcs, udl as u8]);
            p.extend(ud);
            hex(&p)
        })
        .collect()
}

/// A decoded PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub submit: bool,
    pub number: String,
    pub body: Body,
    pub timestamp: Option<Scts>,
    /// (reference, total, sequence)
    pub concat: Option<(u16, u8, u8)>,
}

fn decode_address(b: &[u8], off: usize) -> Option<(String, usize)> {
    let n = usize::from(*b.get(off)?);
    let toa = *b.get(off + 1)?;
    let nbytes = n.div_ceil(2);
    let raw = b.get(off + 2..off + 2 + nbytes)?;
    let number = if toa & 0x70 == 0x50 {
        gsm7_text(&unpack_septets(raw, n * 4 / 7, 0))
    } else {
        let digits: String = raw
            .iter()
            .flat_map(|x| [x & 0x0F, x >> 4])
            .take(n)
            .map(|d| char::from_digit(u32::from(d), 16).unwrap_or('?'))
            .collect();
        if toa & 0x70 == 0x10 {
            format!("+{digits}")
        } else {
            digits
        }
    };
    Some((number, off + 2 + nbytes))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decodes an SMS-DELIVER or SMS-SUBMIT PDU (hex, with SMSC prefix).
pub fn decode(pdu_hex: &str) -> Option<Decoded> {
    let b = unhex(pdu_hex.trim())?;
    let mut off = 1 + usize::from(*b.first()?);
    let first = *b.get(off)?;
    off += 1;
    let mti = first & 0x03;
    let submit = match mti {
        0 => false,
        1 => {
            off += 1; // TP-MR
            true
        }
        _ => return None,
    };
    let (number, o) = decode_address(&b, off)?;
    off = o;
    let dcs = *b.get(off + 1)?;
    off += 2;
    let timestamp = if submit {
        off += match (first >> 3) & 0x03 {
            0 => 0,
            2 => 1,
            _ => 7,
        };
        None
    } else {
        let t = Scts::decode(b.get(off..off + 7)?);
        off += 7;
        t
    };
    let udl = usize::from(*b.get(off)?);
    let ud = b.get(off + 1..)?;
    let mut udh_len = 0;
    let mut concat = None;
    if first & 0x40 != 0 {
        udh_len = usize::from(*ud.first()?) + 1;
        let udh = ud.get(1..udh_len)?;
        let mut i = 0;
        while i + 1 < udh.len() {
            let (iei, ln) = (udh[i], usize::from(udh[i + 1]));
            let v = udh.get(i + 2..i + 2 + ln)?;
            match (iei, v) {
                (0x00, [r, t, s]) => concat = Some((u16::from(*r), *t, *s)),
                (0x08, [r1, r2, t, s]) => {
                    concat = Some((u16::from(*r1) << 8 | u16::from(*r2), *t, *s))
                }
                _ => {}
            }
            i += 2 + ln;
        }
    }
    let alphabet = if dcs & 0xC0 == 0 {
        (dcs >> 2) & 0x03
    } else {
        0
    };
    let body = match alphabet {
        0 => Body::Text(gsm7_text(&unpack_septets(ud, udl, udh_len))),
        2 => {
            let bytes = ud.get(udh_len..udl.min(ud.len()))?;
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from(c[0]) << 8 | u16::from(*c.get(1).unwrap_or(&0)))
                .collect();
            Body::Text(String::from_utf16_lossy(&units))
        }
        _ => Body::Data(ud.get(udh_len..udl.min(ud.len()))?.to_vec()),
    };
    Some(Decoded {
        submit,
        number,
        body,
        timestamp,
        concat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pdu() {
        // 3GPP example-style: "hellohello" GSM 7-bit packing
        let (d, udl) = pack_septets(&gsm7_septets("hellohello").unwrap(), &[]);
        assert_eq!(hex(&d), "E8329BFD4697D9EC37");
        assert_eq!(udl, 10);
    }

    #[test]
    fn round_trips() {
        let when = Scts {
            year: 2024,
            month: 1,
            day: 1,
            hour: 15,
            minute: 7,
            second: 7,
            offset_minutes: 330,
        };
        for (number, body) in [
            (
                "+15551230001",
                Body::Text("Hello from the fake modem!".into()),
            ),
            (
                "+8613800138000",
                Body::Text("你好，世界！这是一条中文短信。".into()),
            ),
            (
                "+4917012345678",
                Body::Text("Grüße aus Köln: 5€ {ok} [x] ~ ^ | \\ @ _".into()),
            ),
            ("Vendor", Body::Text("Your code is 123456".into())),
            ("+15551230004", Body::Text("Emoji test 😀👍 and é".into())),
            ("12345", Body::Data(vec![0, 1, 2, 0xFE, 0xFF])),
        ] {
            let pdus = deliver_pdus(number, &body, &when, 7, "+15550000000");
            assert_eq!(pdus.len(), 1);
            let d = decode(&pdus[0]).unwrap();
            assert_eq!(
                (d.number.as_str(), &d.body, d.timestamp, d.submit),
                (number, &body, Some(when), false)
            );
            let s = decode(&submit_pdus(number, &body, 1)[0]).unwrap();
            assert_eq!(
                (s.number.as_str(), &s.body, s.submit),
                (number, &body, true)
            );
        }
        assert_eq!(when.glib_iso8601(), "2024-01-01T15:07:07+05:30");
        let long: String = "0123456789€".repeat(20);
        let parts = deliver_pdus("+1", &Body::Text(long.clone()), &when, 9, "+1");
        assert_eq!(parts.len(), 2);
        let text: String = parts
            .iter()
            .map(|p| match decode(p).unwrap().body {
                Body::Text(t) => t,
                Body::Data(_) => unreachable!(),
            })
            .collect();
        assert_eq!(text, long);
        assert_eq!(decode(&parts[1]).unwrap().concat, Some((9, 2, 2)));
        assert_eq!(
            Scts::from_unix_utc(1_704_088_800).rfc3339(),
            "2024-01-01T06:00:00Z"
        );
    }
}
