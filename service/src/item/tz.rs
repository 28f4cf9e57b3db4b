//! Evaluating a `VTIMEZONE` (RFC 5545 3.6.5): the UTC offset in force at a wall-clock
//! time, for converting zoned times to UTC (vCalendar 1.0 has no time zones).
//!
//! Supported observance rules: a fixed `DTSTART` (plus `RDATE`s), and yearly rules with
//! `BYMONTH` and either `BYDAY` (`-1SU`, `2SU`, `SU` with `BYMONTHDAY` ranges as in
//! `BYMONTHDAY=8,9,…,14`) or `BYMONTHDAY`, with `UNTIL`/`COUNT`. This covers what
//! libical (EDS's built-in zones) and common clients produce.

use super::caltime::{parse_utc_offset, Date, LocalTime};
use super::ical::Component;

/// One onset of an observance: the wall-clock time (in the offset before it) and the
/// offset that starts.
struct Onset {
    utc: i64,
    offset_to: i32,
}

struct Observance {
    start: LocalTime,
    offset_from: i32,
    offset_to: i32,
    rule: Option<YearlyRule>,
    rdates: Vec<LocalTime>,
}

struct YearlyRule {
    months: Vec<u8>,
    /// (ordinal, weekday 0 = Monday); ordinal 0 = every such weekday.
    days: Vec<(i8, u8)>,
    month_days: Vec<i8>,
    until_utc: Option<i64>,
    count: Option<u32>,
    interval: i32,
}

pub(crate) fn weekday_index(s: &str) -> Option<u8> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MO" => 0,
        "TU" => 1,
        "WE" => 2,
        "TH" => 3,
        "FR" => 4,
        "SA" => 5,
        "SU" => 6,
        _ => return None,
    })
}

fn parse_rule(value: &str) -> Option<YearlyRule> {
    let mut rule = YearlyRule {
        months: Vec::new(),
        days: Vec::new(),
        month_days: Vec::new(),
        until_utc: None,
        count: None,
        interval: 1,
    };
    let mut yearly = false;
    for part in value.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => yearly = v.eq_ignore_ascii_case("YEARLY"),
            "BYMONTH" => {
                rule.months = v
                    .split(',')
                    .map(|m| m.trim().parse().ok())
                    .collect::<Option<_>>()?
            }
            "BYMONTHDAY" => {
                rule.month_days = v
                    .split(',')
                    .map(|m| m.trim().parse().ok())
                    .collect::<Option<_>>()?
            }
            "BYDAY" => {
                for d in v.split(',') {
                    let d = d.trim();
                    let split = d.len().checked_sub(2)?;
                    let wd = weekday_index(d.get(split..)?)?;
                    let ord = d[..split].trim();
                    let ord: i8 = if ord.is_empty() {
                        0
                    } else {
                        ord.trim_start_matches('+').parse().ok()?
                    };
                    rule.days.push((ord, wd));
                }
            }
            "UNTIL" => {
                let v = v.trim();
                let t = match v.strip_suffix(['Z', 'z']) {
                    Some(u) => LocalTime::parse(u)?,
                    None => {
                        LocalTime::parse(v).or_else(|| Date::parse(v).map(LocalTime::midnight))?
                    }
                };
                rule.until_utc = Some(t.seconds());
            }
            "COUNT" => rule.count = Some(v.trim().parse().ok()?),
            "INTERVAL" => rule.interval = v.trim().parse().ok().filter(|&i: &i32| i >= 1)?,
            "WKST" => {}
            _ => return None,
        }
    }
    (yearly && !rule.months.is_empty()).then_some(rule)
}

impl YearlyRule {
    /// The onset dates of `year` (several only with unusual rules).
    fn dates(&self, year: i32) -> Vec<Date> {
        let mut out = Vec::new();
        for &m in &self.months {
            let Some(first) = Date::new(year, m, 1) else {
                continue;
            };
            let len = first.days_in_month();
            let candidates: Vec<Date> = (1..=len).filter_map(|d| Date::new(year, m, d)).collect();
            let by_month_day = |d: &Date| {
                self.month_days.is_empty()
                    || self.month_days.iter().any(|&md| {
                        let md = i32::from(md);
                        (md > 0 && md == i32::from(d.day))
                            || (md < 0 && i32::from(len) + md + 1 == i32::from(d.day))
                    })
            };
            if self.days.is_empty() {
                out.extend(
                    candidates
                        .iter()
                        .copied()
                        .filter(|d| by_month_day(d) && !self.month_days.is_empty()),
                );
                continue;
            }
            for &(ord, wd) in &self.days {
                let matching: Vec<Date> = candidates
                    .iter()
                    .copied()
                    .filter(|d| d.weekday() == wd)
                    .collect();
                let picked: Vec<Date> = match ord {
                    0 => matching,
                    o if o > 0 => matching.get(o as usize - 1).copied().into_iter().collect(),
                    o => matching
                        .len()
                        .checked_sub(o.unsigned_abs() as usize)
                        .and_then(|i| matching.get(i))
                        .copied()
                        .into_iter()
                        .collect(),
                };
                out.extend(picked.into_iter().filter(by_month_day));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn observances(vtz: &Component) -> Vec<Observance> {
    let mut out = Vec::new();
    for sub in &vtz.subs {
        if sub.name != "STANDARD" && sub.name != "DAYLIGHT" {
            continue;
        }
        let get = |n: &str| sub.prop(n).map(|p| p.value.trim().to_string());
        let (Some(start), Some(from), Some(to)) = (
            get("DTSTART").and_then(|v| LocalTime::parse(&v)),
            get("TZOFFSETFROM").and_then(|v| parse_utc_offset(&v)),
            get("TZOFFSETTO").and_then(|v| parse_utc_offset(&v)),
        ) else {
            continue;
        };
        let rule = get("RRULE").and_then(|r| parse_rule(&r));
        let rdates = sub
            .props
            .iter()
            .filter(|p| p.name == "RDATE")
            .flat_map(|p| {
                p.value
                    .split(',')
                    .filter_map(|v| LocalTime::parse(v.trim()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.push(Observance {
            start,
            offset_from: from,
            offset_to: to,
            rule,
            rdates,
        });
    }
    out
}

/// The onsets of `o` in the years around `year` (and its fixed ones).
fn onsets(o: &Observance, year: i32, out: &mut Vec<Onset>) {
    let mut push = |t: LocalTime| {
        out.push(Onset {
            utc: t.seconds() - i64::from(o.offset_from),
            offset_to: o.offset_to,
        })
    };
    push(o.start);
    for r in &o.rdates {
        push(*r);
    }
    let Some(rule) = &o.rule else { return };
    let first_year = o.start.date.year;
    // COUNT: the n-th onset counted from the start year (rules with COUNT are rare).
    let mut counted = 0u32;
    let from_year = if rule.count.is_some() {
        first_year
    } else {
        (year - 1).max(first_year)
    };
    for y in from_year..=year + 1 {
        if (y - first_year) % rule.interval != 0 {
            continue;
        }
        for d in rule.dates(y) {
            let t = LocalTime {
                date: d,
                hour: o.start.hour,
                minute: o.start.minute,
                second: o.start.second,
            };
            if t < o.start {
                continue;
            }
            counted += 1;
            if rule.count.is_some_and(|c| counted > c) {
                return;
            }
            let utc = t.seconds() - i64::from(o.offset_from);
            if rule.until_utc.is_some_and(|u| utc > u) {
                return;
            }
            if y >= year - 1 {
                out.push(Onset {
                    utc,
                    offset_to: o.offset_to,
                });
            }
        }
    }
}

/// The UTC time of the wall-clock time `t` in the zone `vtz`. `None` if the zone has no
/// usable observance.
pub fn to_utc(vtz: &Component, t: LocalTime) -> Option<LocalTime> {
    let obs = observances(vtz);
    let mut all = Vec::new();
    for o in &obs {
        onsets(o, t.date.year, &mut all);
    }
    if all.is_empty() {
        return None;
    }
    let local = t.seconds();
    // The latest onset at or before t, judged with the offset that onset introduces.
    let best = all
        .iter()
        .filter(|on| on.utc + i64::from(on.offset_to) <= local)
        .max_by_key(|on| on.utc)
        .or_else(|| all.iter().min_by_key(|on| on.utc))?;
    // Before the first onset: the offset in force is the first observance's "from".
    let offset = if best.utc + i64::from(best.offset_to) > local {
        obs.iter()
            .min_by_key(|o| o.start)
            .map(|o| o.offset_from)
            .unwrap_or(best.offset_to)
    } else {
        best.offset_to
    };
    Some(LocalTime::from_seconds(local - i64::from(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::ical;

    const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

    fn zone(text: &str) -> Component {
        ical::parse(text.as_bytes()).unwrap().components.remove(0)
    }

    fn utc(vtz: &Component, t: &str) -> String {
        to_utc(vtz, LocalTime::parse(t).unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn berlin_rules() {
        let z = zone(BERLIN);
        assert_eq!(utc(&z, "20240108T093000"), "20240108T083000");
        assert_eq!(utc(&z, "20240711T093000"), "20240711T073000");
        // 2024: DST from 31 March 02:00 to 27 October 03:00.
        assert_eq!(utc(&z, "20240331T010000"), "20240331T000000");
        assert_eq!(utc(&z, "20240331T040000"), "20240331T020000");
        assert_eq!(utc(&z, "20241027T040000"), "20241027T030000");
        assert_eq!(utc(&z, "20241026T120000"), "20241026T100000");
        assert_eq!(utc(&z, "20240101T000000"), "20231231T230000");
    }

    #[test]
    fn historic_observances_and_fixed_zones() {
        // libical style: fixed observances, then a rule with UNTIL, then a later rule.
        let ny = zone("BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-045602\r\nTZOFFSETTO:-0500\r\nDTSTART:18831118T120358\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nDTSTART:19180331T020000\r\nRRULE:FREQ=YEARLY;UNTIL=19200328T070000Z;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nDTSTART:20071104T020000\r\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nDTSTART:20070311T020000\r\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n");
        assert_eq!(utc(&ny, "20240110T090000"), "20240110T140000");
        assert_eq!(utc(&ny, "20240710T090000"), "20240710T130000");
        let tokyo = zone("BEGIN:VTIMEZONE\r\nTZID:Asia/Tokyo\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nDTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n");
        assert_eq!(utc(&tokyo, "20240110T090000"), "20240110T000000");
        assert!(to_utc(
            &zone("BEGIN:VTIMEZONE\r\nTZID:x\r\nEND:VTIMEZONE\r\n"),
            LocalTime::parse("20240101T000000").unwrap()
        )
        .is_none());
    }
}
