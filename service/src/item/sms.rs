//! Short messages (SMS) in the common item model.
//!
//! An [`Sms`] is what a phone's message store knows about one message, whatever the
//! platform: the folder it lives in (inbox, sent, draft), whether it was read, the other
//! party's number (or alphanumeric sender name), the network timestamp when there is one,
//! and the body: UTF-8 text, or raw 8-bit data for binary messages.
//!
//! ## Identity
//! Platform ids of messages are not stable (ModemManager numbers its `SMS/N` objects anew
//! every time it starts), so a message is identified by its content: [`Sms::identity`] hashes
//! the direction (received or outgoing), the number, the timestamp (as an instant *and* its
//! offset, see [`SmsTimestamp::canonical`]) and the body. The read flag and the difference
//! between a draft and a sent message are not part of it: they change during a message's
//! life (a draft gets sent, an unread message gets read) and it stays the same message.
//! [`crate::item::Item::uid`] returns this identity, so a restore recognises messages the
//! phone already holds.

use std::fmt;

use xxhash_rust::xxh3::xxh3_128;

/// The folder of a message (vMessage `X-IRMC-BOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SmsFolder {
    /// Received from the network.
    Inbox,
    /// Sent to the network.
    Sent,
    /// Written here and not sent (also: waiting to be sent).
    Draft,
}

impl SmsFolder {
    /// The `X-IRMC-BOX` value.
    pub fn irmc_box(self) -> &'static str {
        match self {
            SmsFolder::Inbox => "INBOX",
            SmsFolder::Sent => "SENTBOX",
            SmsFolder::Draft => "DRAFT",
        }
    }

    /// Parses an `X-IRMC-BOX` value (case-insensitive; `OUTBOX`, whose messages are not sent
    /// yet, counts as a draft; `SENT` is accepted for `SENTBOX`).
    pub fn from_irmc_box(v: &str) -> Option<SmsFolder> {
        match v.trim().to_ascii_uppercase().as_str() {
            "INBOX" => Some(SmsFolder::Inbox),
            "SENTBOX" | "SENT" => Some(SmsFolder::Sent),
            "DRAFT" | "DRAFTS" | "OUTBOX" => Some(SmsFolder::Draft),
            _ => None,
        }
    }

    /// True for messages that came from the other party.
    pub fn is_incoming(self) -> bool {
        self == SmsFolder::Inbox
    }
}

/// The content of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SmsBody {
    /// Text (already decoded from GSM 7-bit / UCS-2 and joined across parts).
    Text(String),
    /// An 8-bit (binary) message: its user data, kept as is.
    Data(Vec<u8>),
}

/// A network timestamp with its UTC offset, to the second, exactly as the network gave it
/// (an SMS-DELIVER carries the sender's SMSC local time and its offset in quarter hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmsTimestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in minutes (east positive).
    pub offset_minutes: i16,
}

/// Why a timestamp could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp '{input}': {why}")]
pub struct TimestampError {
    pub input: String,
    pub why: &'static str,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Reads exactly `n` ASCII digits.
fn digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s[..n]
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    Some((v, &s[n..]))
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    s.strip_prefix(&[c][..])
}

impl SmsTimestamp {
    /// Parses a timestamp as ModemManager prints it (GLib's `g_date_time_format_iso8601`):
    /// `YYYY-MM-DDTHH:MM:SS` followed by `Z`, `±HH` (whole hours) or `±HH:MM`. Also accepted,
    /// because vMessages from other writers use them: fractional seconds (dropped),
    /// `±HHMM`, a space instead of `T`, the basic form `YYYYMMDDTHHMMSS(Z|±HH[MM])`, and
    /// surrounding white space. Everything is checked (calendar dates, hours 0–23, offsets
    /// below 24 h); the result keeps the offset it was given.
    ///
    /// Returns `Ok(None)` for the empty string (drafts and sent messages have none).
    pub fn parse(input: &str) -> Result<Option<SmsTimestamp>, TimestampError> {
        let err = |why| TimestampError {
            input: input.chars().take(64).collect(),
            why,
        };
        let s = input.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let b = s.as_bytes();
        let extended = b.get(4) == Some(&b'-');
        let (year, b) = digits(b, 4).ok_or_else(|| err("expected a four-digit year"))?;
        let b = if extended {
            expect(b, b'-').ok_or_else(|| err("expected '-'"))?
        } else {
            b
        };
        let (month, b) = digits(b, 2).ok_or_else(|| err("expected a two-digit month"))?;
        let b = if extended {
            expect(b, b'-').ok_or_else(|| err("expected '-'"))?
        } else {
            b
        };
        let (day, b) = digits(b, 2).ok_or_else(|| err("expected a two-digit day"))?;
        let b = match b.first() {
            Some(b'T' | b't' | b' ') => &b[1..],
            _ => return Err(err("expected 'T' between date and time")),
        };
        let (hour, b) = digits(b, 2).ok_or_else(|| err("expected a two-digit hour"))?;
        let b = if extended {
            expect(b, b':').ok_or_else(|| err("expected ':'"))?
        } else {
            b
        };
        let (minute, b) = digits(b, 2).ok_or_else(|| err("expected two-digit minutes"))?;
        let b = if extended {
            expect(b, b':').ok_or_else(|| err("expected ':'"))?
        } else {
            b
        };
        let (second, mut b) = digits(b, 2).ok_or_else(|| err("expected two-digit seconds"))?;
        if let Some(rest) = b.strip_prefix(b".").or_else(|| b.strip_prefix(b",")) {
            let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(err("expected digits after the decimal point"));
            }
            b = &rest[n..];
        }
        let offset_minutes: i32 = match b {
            [] => return Err(err("missing UTC offset (Z, ±HH or ±HH:MM)")),
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), rest @ ..] => {
                let (h, rest) =
                    digits(rest, 2).ok_or_else(|| err("expected two-digit offset hours"))?;
                let (m, rest) = match rest {
                    [] => (0, rest),
                    [b':', r @ ..] => {
                        digits(r, 2).ok_or_else(|| err("expected two-digit offset minutes"))?
                    }
                    r => digits(r, 2).ok_or_else(|| err("expected two-digit offset minutes"))?,
                };
                if !rest.is_empty() {
                    return Err(err("unexpected characters after the UTC offset"));
                }
                if h > 23 || m > 59 {
                    return Err(err("UTC offset out of range"));
                }
                let v = (h * 60 + m) as i32;
                if *sign == b'-' {
                    -v
                } else {
                    v
                }
            }
            _ => return Err(err("unexpected characters after the time")),
        };
        let (year, month, day) = (year as u16, month as u8, day as u8);
        if !(1..=12).contains(&month) {
            return Err(err("month out of range"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(err("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("time of day out of range"));
        }
        Ok(Some(SmsTimestamp {
            year,
            month,
            day,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            offset_minutes: offset_minutes as i16,
        }))
    }

    /// RFC 3339 with the original offset: `2024-01-01T08:00:00+02:00`, `…Z` for UTC.
    /// Used for the vMessage `Date:` and for the identity (so an offset change is a
    /// different timestamp, as it is on the network).
    pub fn canonical(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.offset_minutes == 0 {
            s.push('Z');
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let m = self.offset_minutes.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
        }
        s
    }

    /// Seconds since 1970-01-01T00:00:00Z (for ordering).
    pub fn unix_seconds(&self) -> i64 {
        // days from civil (Howard Hinnant's algorithm)
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes) * 60
    }
}

impl fmt::Display for SmsTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// One short message. Construct with [`Sms::new`]; the fields are read through accessors
/// so that the identity always matches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    folder: SmsFolder,
    read: bool,
    number: String,
    timestamp: Option<SmsTimestamp>,
    body: SmsBody,
    identity: String,
}

impl Sms {
    pub fn new(
        folder: SmsFolder,
        read: bool,
        number: &str,
        timestamp: Option<SmsTimestamp>,
        body: SmsBody,
    ) -> Sms {
        // one line, no control characters: what every wire format can carry
        let number: String = number
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let number = number.trim().to_string();
        let identity = identity(folder.is_incoming(), &number, timestamp.as_ref(), &body);
        Sms {
            folder,
            read,
            number,
            timestamp,
            body,
            identity,
        }
    }

    pub fn folder(&self) -> SmsFolder {
        self.folder
    }

    /// Whether the message was read (outgoing messages count as read).
    pub fn read(&self) -> bool {
        self.read
    }

    /// The other party: the sender of a received message, the recipient of an outgoing one.
    /// A phone number (`+4917012345678`) or an alphanumeric sender (`Vendor`).
    pub fn number(&self) -> &str {
        &self.number
    }

    pub fn timestamp(&self) -> Option<&SmsTimestamp> {
        self.timestamp.as_ref()
    }

    pub fn body(&self) -> &SmsBody {
        &self.body
    }

    /// The text, or `None` for a binary message.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            SmsBody::Text(t) => Some(t),
            SmsBody::Data(_) => None,
        }
    }

    /// The content identity (see the module documentation): 32 lowercase hex digits.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The same message in another folder / read state (the identity stays unless the
    /// direction changes).
    pub fn with_state(&self, folder: SmsFolder, read: bool) -> Sms {
        Sms::new(
            folder,
            read,
            &self.number,
            self.timestamp,
            self.body.clone(),
        )
    }
}

/// The content identity of a message: xxh3-128 over a versioned, length-prefixed encoding
/// of direction, number, canonical timestamp and body.
pub fn identity(
    incoming: bool,
    number: &str,
    timestamp: Option<&SmsTimestamp>,
    body: &SmsBody,
) -> String {
    let mut buf = Vec::with_capacity(64);
    let mut field = |tag: u8, bytes: &[u8]| {
        buf.push(tag);
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    field(b'v', b"sms-identity-1");
    field(b'd', if incoming { b"in" } else { b"out" });
    field(b'n', number.trim().as_bytes());
    field(
        b't',
        timestamp
            .map(SmsTimestamp::canonical)
            .unwrap_or_default()
            .as_bytes(),
    );
    match body {
        SmsBody::Text(t) => field(b'x', t.as_bytes()),
        SmsBody::Data(d) => field(b'b', d),
    }
    format!("{:032x}", xxh3_128(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> SmsTimestamp {
        SmsTimestamp::parse(s).unwrap().unwrap()
    }

    #[test]
    fn parses_modemmanager_forms() {
        let t = ts("2024-01-01T08:00:00+02");
        assert_eq!(
            t,
            SmsTimestamp {
                year: 2024,
                month: 1,
                day: 1,
                hour: 8,
                minute: 0,
                second: 0,
                offset_minutes: 120
            }
        );
        assert_eq!(t.canonical(), "2024-01-01T08:00:00+02:00");
        assert_eq!(ts("2024-01-01T13:05:05Z").offset_minutes, 0);
        assert_eq!(
            ts("2024-01-01T13:05:05Z").canonical(),
            "2024-01-01T13:05:05Z"
        );
        assert_eq!(ts("2024-01-01T15:07:07+05:30").offset_minutes, 330);
        assert_eq!(ts("2024-01-01T16:08:08-03:30").offset_minutes, -210);
        assert_eq!(ts("2024-01-01T10:02:02-05").offset_minutes, -300);
        assert_eq!(SmsTimestamp::parse("").unwrap(), None);
        assert_eq!(SmsTimestamp::parse("  ").unwrap(), None);
    }

    #[test]
    fn parses_other_writers_forms() {
        assert_eq!(ts("20240601T083000Z"), ts("2024-06-01T08:30:00Z"));
        assert_eq!(
            ts("2024-06-01 08:30:00+0200"),
            ts("2024-06-01T08:30:00+02:00")
        );
        assert_eq!(ts("2024-06-01T08:30:00.123Z"), ts("2024-06-01T08:30:00Z"));
        assert_eq!(ts(" 2024-06-01T08:30:00-00:00 ").offset_minutes, 0);
        assert_eq!(ts("2024-02-29T00:00:00Z").day, 29);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "2024-01-01",
            "2024-01-01T08:00:00",
            "2024-01-01T08:00+02",
            "2024-13-01T08:00:00Z",
            "2023-02-29T08:00:00Z",
            "2024-01-00T08:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T08:60:00Z",
            "2024-01-01T08:00:60Z",
            "2024-01-01T08:00:00+24",
            "2024-01-01T08:00:00+02:60",
            "2024-01-01T08:00:00+2",
            "2024-01-01T08:00:00+02:0",
            "2024-01-01T08:00:00Zx",
            "2024-01-01T08:00:00.Z",
            "2024-01-01x08:00:00Z",
            "２０２４-01-01T08:00:00Z",
            "2024-01-01T08:00:00+02:00:00",
            "-024-01-01T08:00:00Z",
        ] {
            assert!(SmsTimestamp::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn never_panics_on_prefixes_and_junk() {
        let good = "2024-01-01T15:07:07+05:30";
        for i in 0..=good.len() {
            let _ = SmsTimestamp::parse(&good[..i]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = b"0123456789-+:TZ. z\xc3\xa9";
        for _ in 0..20_000 {
            let mut s = Vec::new();
            for _ in 0..(seed % 30) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = SmsTimestamp::parse(&String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn unix_seconds_orders_by_instant() {
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_seconds(), 0);
        assert_eq!(ts("2024-01-01T08:00:00+02").unix_seconds(), 1_704_088_800);
        assert_eq!(
            ts("2024-01-01T06:00:00Z").unix_seconds(),
            ts("2024-01-01T08:00:00+02").unix_seconds()
        );
    }

    #[test]
    fn identity_is_stable_and_discriminating() {
        let t = Some(ts("2024-01-01T08:00:00+02"));
        let a = Sms::new(
            SmsFolder::Inbox,
            true,
            "+15551230001",
            t,
            SmsBody::Text("Hello".into()),
        );
        // fixed value: the identity is stored in backups and must never change
        assert_eq!(a.identity(), "f1920e9e797d6a0467874becdfd94c0e");
        // read state does not matter
        assert_eq!(
            a.identity(),
            a.with_state(SmsFolder::Inbox, false).identity()
        );
        // draft → sent keeps the identity, direction does not
        let d = Sms::new(
            SmsFolder::Draft,
            true,
            "+15551230001",
            None,
            SmsBody::Text("Hello".into()),
        );
        assert_eq!(d.identity(), d.with_state(SmsFolder::Sent, true).identity());
        assert_ne!(
            d.identity(),
            d.with_state(SmsFolder::Inbox, true).identity()
        );
        // every content field matters
        let other_time = Sms::new(
            SmsFolder::Inbox,
            true,
            "+15551230001",
            Some(ts("2024-01-01T06:00:00Z")),
            SmsBody::Text("Hello".into()),
        );
        assert_ne!(
            a.identity(),
            other_time.identity(),
            "same instant, other offset"
        );
        assert_ne!(
            a.identity(),
            Sms::new(
                SmsFolder::Inbox,
                true,
                "+15551230002",
                t,
                SmsBody::Text("Hello".into())
            )
            .identity()
        );
        assert_ne!(
            a.identity(),
            Sms::new(
                SmsFolder::Inbox,
                true,
                "+15551230001",
                t,
                SmsBody::Text("Hello!".into())
            )
            .identity()
        );
        assert_ne!(
            a.identity(),
            Sms::new(
                SmsFolder::Inbox,
                true,
                "+15551230001",
                t,
                SmsBody::Data(b"Hello".to_vec())
            )
            .identity()
        );
        // fields cannot bleed into each other
        assert_ne!(
            identity(true, "ab", None, &SmsBody::Text("c".into())),
            identity(true, "a", None, &SmsBody::Text("bc".into()))
        );
    }
}
