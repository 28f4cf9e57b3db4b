//! Calendar date and time values (RFC 5545 DATE, DATE-TIME, DURATION, UTC-OFFSET), with
//! the little arithmetic the conversions need (proleptic Gregorian calendar, no leap
//! seconds).

use std::fmt;

use super::vcard::Property;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// A wall-clock date and time (no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime {
    pub date: Date,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The value of a date or date-time property (`DTSTART`, `DUE`, `EXDATE`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CalTime {
    /// `VALUE=DATE`: an all-day value.
    Date(Date),
    /// A UTC date-time (`…Z`).
    Utc(LocalTime),
    /// A date-time without zone (floating: the same wall-clock time everywhere).
    Floating(LocalTime),
    /// A date-time in the zone `tzid` (`TZID=Europe/Berlin`).
    Zoned { tzid: String, time: LocalTime },
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A valid date, or `None`.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        ((1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month))
        .then_some(Date { year, month, day })
    }

    /// Parses `YYYYMMDD` (or `YYYY-MM-DD`).
    pub fn parse(s: &str) -> Option<Date> {
        let s: String = s.chars().filter(|&c| c != '-').collect();
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Date::new(
            s[..4].parse().ok()?,
            s[4..6].parse().ok()?,
            s[6..8].parse().ok()?,
        )
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01 (clamped to years 1..=9999).
    pub fn from_days(days: i64) -> Date {
        let days = days.clamp(
            Date {
                year: 1,
                month: 1,
                day: 1,
            }
            .days(),
            Date {
                year: 9999,
                month: 12,
                day: 31,
            }
            .days(),
        );
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday (3).
        ((self.days() + 3).rem_euclid(7)) as u8
    }

    pub fn add_days(self, n: i64) -> Date {
        Date::from_days(self.days() + n)
    }

    pub fn days_in_month(self) -> u8 {
        days_in_month(self.year, self.month)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl LocalTime {
    pub fn new(date: Date, hour: u8, minute: u8, second: u8) -> Option<LocalTime> {
        // 60 = a leap second, as RFC 5545 allows.
        (hour < 24 && minute < 60 && second <= 60).then_some(LocalTime {
            date,
            hour,
            minute,
            second,
        })
    }

    /// Parses `YYYYMMDDTHHMMSS` (no zone suffix).
    pub fn parse(s: &str) -> Option<LocalTime> {
        let (d, t) = s.split_once(['T', 't'])?;
        let date = Date::parse(d)?;
        if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        LocalTime::new(
            date,
            t[..2].parse().ok()?,
            t[2..4].parse().ok()?,
            t[4..6].parse().ok()?,
        )
    }

    /// Seconds since 1970-01-01T00:00:00 of the same wall clock (as if UTC).
    pub fn seconds(self) -> i64 {
        self.date.days() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    pub fn from_seconds(s: i64) -> LocalTime {
        let date = Date::from_days(s.div_euclid(86_400));
        let rem = s.rem_euclid(86_400);
        LocalTime {
            date,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    pub fn add_seconds(self, n: i64) -> LocalTime {
        LocalTime::from_seconds(self.seconds() + n)
    }

    pub fn midnight(date: Date) -> LocalTime {
        LocalTime {
            date,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}T{:02}{:02}{:02}",
            self.date, self.hour, self.minute, self.second
        )
    }
}

impl CalTime {
    /// Parses one value (`20240108T093000`, `…Z`, `20240315`) with the property's `TZID`
    /// and `VALUE` parameters. `None` if the text is not a date or date-time.
    pub fn parse(value: &str, tzid: Option<&str>, value_type: Option<&str>) -> Option<CalTime> {
        let v = value.trim();
        let date_only =
            value_type.is_some_and(|t| t.eq_ignore_ascii_case("DATE")) || !v.contains(['T', 't']);
        if date_only {
            return Date::parse(v).map(CalTime::Date);
        }
        if let Some(utc) = v.strip_suffix(['Z', 'z']) {
            return LocalTime::parse(utc).map(CalTime::Utc);
        }
        let time = LocalTime::parse(v)?;
        Some(match tzid.map(str::trim).filter(|t| !t.is_empty()) {
            Some(tzid) => CalTime::Zoned {
                tzid: tzid.to_string(),
                time,
            },
            None => CalTime::Floating(time),
        })
    }

    /// The values of a date property (one, or a comma list as in `EXDATE`). `None` if the
    /// property has parameters other than `VALUE` and `TZID`, or a value does not parse.
    pub fn from_property(p: &Property) -> Option<Vec<CalTime>> {
        if p.group.is_some()
            || !p
                .params
                .iter()
                .all(|q| q.name == "VALUE" || q.name == "TZID")
        {
            return None;
        }
        let value_type = p.param_values("VALUE").next();
        if value_type.is_some_and(|t| {
            !t.eq_ignore_ascii_case("DATE") && !t.eq_ignore_ascii_case("DATE-TIME")
        }) {
            return None;
        }
        let tzid = p.param_values("TZID").next();
        let out: Option<Vec<CalTime>> = p
            .value
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| CalTime::parse(s, tzid, value_type))
            .collect();
        out.filter(|v| !v.is_empty())
    }

    /// The TZID, if zoned.
    pub fn tzid(&self) -> Option<&str> {
        match self {
            CalTime::Zoned { tzid, .. } => Some(tzid),
            _ => None,
        }
    }

    pub fn is_date(&self) -> bool {
        matches!(self, CalTime::Date(_))
    }

    /// The wall-clock time (midnight for a date).
    pub fn local(&self) -> LocalTime {
        match self {
            CalTime::Date(d) => LocalTime::midnight(*d),
            CalTime::Utc(t) | CalTime::Floating(t) | CalTime::Zoned { time: t, .. } => *t,
        }
    }

    /// The value text as written (`20240108T093000`, `…Z`, `20240315`).
    pub fn value_text(&self) -> String {
        match self {
            CalTime::Date(d) => d.to_string(),
            CalTime::Utc(t) => format!("{t}Z"),
            CalTime::Floating(t) | CalTime::Zoned { time: t, .. } => t.to_string(),
        }
    }

    /// The value as RemoveObjects expects a recurrence id: without TZID, `Z` for UTC.
    pub fn rid_text(&self) -> String {
        self.value_text()
    }

    /// A property `name` holding this value (with `VALUE=DATE` or `TZID` as needed).
    pub fn to_property(&self, name: &str) -> Property {
        let mut p = Property {
            group: None,
            name: name.to_string(),
            params: Vec::new(),
            value: self.value_text(),
        };
        match self {
            CalTime::Date(_) => p.params.push(super::vcard::Param::new("VALUE", &["DATE"])),
            CalTime::Zoned { tzid, .. } => p.params.push(super::vcard::Param {
                name: "TZID".into(),
                values: vec![tzid.clone()],
            }),
            _ => {}
        }
        p
    }
}

/// Parses an RFC 5545 DURATION (`-PT15M`, `P1D`, `P2W`, `PT1H30M`) into seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    let mut in_time = false;
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            d if d.is_ascii_digit() => {
                let digit = i64::from(d as u8 - b'0');
                num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(digit)?);
            }
            'T' if !in_time && num.is_none() => in_time = true,
            unit => {
                let n = num.take()?;
                let factor = match (unit, in_time) {
                    ('W', false) => 604_800,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(factor)?)?;
                any = true;
            }
        }
    }
    (any && num.is_none()).then_some(sign * total)
}

/// Formats seconds as an RFC 5545 DURATION (`-PT15M`, `P1D`, `PT0S`).
pub fn format_duration(seconds: i64) -> String {
    let mut out = String::new();
    if seconds < 0 {
        out.push('-');
    }
    let mut s = seconds.unsigned_abs();
    out.push('P');
    if s == 0 {
        out.push_str("T0S");
        return out;
    }
    if s.is_multiple_of(604_800) {
        out.push_str(&format!("{}W", s / 604_800));
        return out;
    }
    let days = s / 86_400;
    s %= 86_400;
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if s > 0 {
        out.push('T');
        let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if sec > 0 {
            out.push_str(&format!("{sec}S"));
        }
    }
    out
}

/// Parses a UTC offset (`+0100`, `-0500`, `+005328`, `+01:00`, `+1`) into seconds.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0, 0),
        4 => (digits[..2].parse().ok()?, digits[2..4].parse().ok()?, 0),
        6 => (
            digits[..2].parse().ok()?,
            digits[2..4].parse().ok()?,
            digits[4..6].parse().ok()?,
        ),
        _ => return None,
    };
    (h < 24 && m < 60 && sec < 60).then_some(sign * (h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        for d in [-700_000i64, -1, 0, 1, 19_000, 60_000, 2_900_000] {
            assert_eq!(Date::from_days(d).days(), d);
        }
        assert_eq!(Date::parse("20240108").unwrap().weekday(), 0); // a Monday
        assert_eq!(Date::parse("19700101").unwrap().days(), 0);
        assert_eq!(
            Date::parse("20240228").unwrap().add_days(1),
            Date::parse("20240229").unwrap()
        );
        assert!(Date::parse("20230229").is_none());
        assert!(Date::parse("2024013").is_none());
    }

    #[test]
    fn values() {
        assert_eq!(
            CalTime::parse("20240108T093000", Some("Europe/Berlin"), None),
            Some(CalTime::Zoned {
                tzid: "Europe/Berlin".into(),
                time: LocalTime::parse("20240108T093000").unwrap()
            })
        );
        assert!(matches!(
            CalTime::parse("20240108T093000Z", Some("X"), None),
            Some(CalTime::Utc(_))
        ));
        assert!(matches!(
            CalTime::parse("20240315", None, Some("DATE")),
            Some(CalTime::Date(_))
        ));
        assert!(CalTime::parse("2024031", None, None).is_none());
        assert!(CalTime::parse("20240315T250000", None, None).is_none());
        assert_eq!(
            CalTime::parse("20240315T101500Z", None, None)
                .unwrap()
                .value_text(),
            "20240315T101500Z"
        );
    }

    #[test]
    fn durations() {
        for (s, v) in [
            ("-PT15M", -900),
            ("P1D", 86_400),
            ("P2W", 1_209_600),
            ("PT1H30M", 5400),
            ("PT0S", 0),
            ("-P1DT2H", -93_600),
        ] {
            assert_eq!(parse_duration(s), Some(v), "{s}");
            assert_eq!(parse_duration(&format_duration(v)), Some(v));
        }
        assert_eq!(format_duration(-900), "-PT15M");
        assert_eq!(format_duration(86_400), "P1D");
        for bad in ["", "P", "15M", "PT", "P1H", "PT5", "P99999999999999999999D"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("+0100"), Some(3600));
        assert_eq!(parse_utc_offset("-0500"), Some(-18_000));
        assert_eq!(parse_utc_offset("+005328"), Some(3208));
        assert_eq!(parse_utc_offset("+01:00"), Some(3600));
        assert_eq!(parse_utc_offset("0100"), None);
        assert_eq!(parse_utc_offset("+99"), None);
    }
}
