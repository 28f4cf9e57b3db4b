//! vCalendar 1.0 (`text/x-vcalendar`, versit 1996), hand-written: no maintained crate
//! writes it.
//!
//! ## Writing
//! * Times: UTC (`…Z`) — zoned times are converted with the item's `VTIMEZONE`; floating
//!   times stay floating (a zone the item does not carry makes its times floating).
//!   No `TZ`/`DAYLIGHT` properties are written.
//! * All-day (date-only start and end): `DTSTART` at midnight of the first day and
//!   `DTEND` at 23:59:59 of the *last* day, floating (`DTSTART:20240421T000000`,
//!   `DTEND:20240422T235959` for iCalendar's `20240421`–`20240423` exclusive). Not
//!   date-only values: readers differ on whether a date-only `DTEND` is inclusive
//!   (SyncEvolution takes it as exclusive unless it equals `DTSTART`, losing a day). An
//!   all-day start without an end stays date-only.
//! * `RRULE` in 1.0 syntax (`W1 MO #10`, `MP1 2+ TU #0`, `MD1 15 20241231T000000Z`,
//!   `YM1 3 #0`). A 2.0 rule with no 1.0 equivalent (`BYSETPOS`, hourly, …) is left out.
//! * `EXDATE` (converted like `DTSTART`), `DCREATED`, `LAST-MODIFIED`, `CATEGORIES`
//!   separated by `;`, `STATUS` (`NEEDS ACTION`, `DECLINED` for `CANCELLED`),
//!   `TRANSP` as 0/1.
//! * Alarms: `DISPLAY` → `DALARM`, `AUDIO` → `AALARM`, at an absolute time (the trigger
//!   applied to the start, or to the end/due time for `RELATED=END`); other actions
//!   have no 1.0 form and are left out.
//! * Detached instances have no 1.0 form either: they follow the master as extra
//!   `VEVENT`s with `UID` + `RECURRENCE-ID`, and the master gets an `EXDATE` for each, so
//!   a reader that ignores them still shows the series without the moved occurrence.
//!   Reading drops those extra `EXDATE`s again.
//! * Text is QUOTED-PRINTABLE with `CHARSET=UTF-8` when it is not plain ASCII or holds
//!   line breaks. Unknown `X-` properties pass through; other 2.0-only properties are
//!   left out.
//!
//! ## Reading
//! The reverse; floating times become UTC when the calendar has a `TZ` offset
//! (`DAYLIGHT` rules are ignored). `DTSTART:…T000000` with `DTEND:…T2359xx` (floating,
//! what imsync writes) is read as all-day, `DTEND`'s day being the last day; so is a
//! date-only `DTSTART`/`DTEND` pair (`DTEND` inclusive). A 1.0 rule imsync cannot read is
//! kept as `X-VCAL10-RRULE`.

use super::calendar::{Alarm, CalComponent, CalendarItem, CalendarKind, Trigger, PRODID};
use super::caltime::{format_duration, parse_duration, parse_utc_offset, CalTime, LocalTime};
use super::ical::{self, Component};
use super::tz;
use super::vcard::{escape_text, split_escaped, unescape_text, Property};
use super::ItemError;

const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

// ------------------------------------------------------------------ writing

/// The time as written in 1.0 (see the module documentation).
fn to_v1(t: &CalTime, item: &CalendarItem) -> CalTime {
    match t {
        CalTime::Zoned { tzid, time } => {
            match item.timezone(tzid).and_then(|z| tz::to_utc(z, *time)) {
                Some(utc) => CalTime::Utc(utc),
                None => CalTime::Floating(*time),
            }
        }
        other => other.clone(),
    }
}

fn time_prop(name: &str, t: &CalTime) -> Property {
    Property {
        group: None,
        name: name.to_string(),
        params: Vec::new(),
        value: t.value_text(),
    }
}

/// A 2.0 `RRULE` value in 1.0 syntax, if it has one. `until` converts a 2.0 `UNTIL`.
pub fn rrule_to_v1(rule: &str, until: impl Fn(&str) -> String) -> Option<String> {
    let mut freq = None;
    let mut interval = 1u32;
    let mut count = None;
    let mut until_v = None;
    let (mut byday, mut bymonthday, mut bymonth, mut byyearday) = (None, None, None, None);
    for part in rule.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            "INTERVAL" => interval = v.parse().ok().filter(|&i| i >= 1)?,
            "COUNT" => count = Some(v.parse::<u32>().ok()?),
            "UNTIL" => until_v = Some(v.to_string()),
            "BYDAY" => byday = Some(v.to_ascii_uppercase()),
            "BYMONTHDAY" => bymonthday = Some(v.to_string()),
            "BYMONTH" => bymonth = Some(v.to_string()),
            "BYYEARDAY" => byyearday = Some(v.to_string()),
            "WKST" => {}
            _ => return None,
        }
    }
    let numbers = |list: &str| -> Option<Vec<i32>> {
        list.split(',')
            .map(|n| n.trim().trim_start_matches('+').parse().ok())
            .collect()
    };
    let v1_number = |n: i32| {
        if n < 0 {
            format!("{}-", -n)
        } else {
            n.to_string()
        }
    };
    let mut out = match freq?.as_str() {
        "DAILY"
            if byday.is_none()
                && bymonthday.is_none()
                && bymonth.is_none()
                && byyearday.is_none() =>
        {
            format!("D{interval}")
        }
        "WEEKLY" if bymonthday.is_none() && bymonth.is_none() && byyearday.is_none() => {
            let mut s = format!("W{interval}");
            if let Some(days) = &byday {
                for d in days.split(',') {
                    let d = d.trim();
                    if !WEEKDAYS.contains(&d) {
                        return None;
                    }
                    s.push(' ');
                    s.push_str(d);
                }
            }
            s
        }
        "MONTHLY" if bymonth.is_none() && byyearday.is_none() => match (&byday, &bymonthday) {
            (Some(days), None) => {
                let mut ord: Option<i32> = None;
                let mut names = Vec::new();
                for d in days.split(',') {
                    let d = d.trim();
                    let split = d.len().checked_sub(2)?;
                    let (n, wd) = (d[..split].trim_start_matches('+'), &d[split..]);
                    let n: i32 = n.parse().ok().filter(|&n: &i32| n != 0 && n.abs() <= 5)?;
                    if ord.is_some_and(|o| o != n) || !WEEKDAYS.contains(&wd) {
                        return None;
                    }
                    ord = Some(n);
                    names.push(wd.to_string());
                }
                let n = ord?;
                let occ = if n < 0 {
                    format!("{}-", -n)
                } else {
                    format!("{n}+")
                };
                format!("MP{interval} {occ} {}", names.join(" "))
            }
            (None, Some(days)) => {
                let list: Vec<String> = numbers(days)?.into_iter().map(v1_number).collect();
                format!("MD{interval} {}", list.join(" "))
            }
            (None, None) => format!("MD{interval}"),
            _ => return None,
        },
        "YEARLY" if byday.is_none() && bymonthday.is_none() => match (&bymonth, &byyearday) {
            (Some(m), None) => {
                let list: Vec<String> = numbers(m)?.into_iter().map(|n| n.to_string()).collect();
                format!("YM{interval} {}", list.join(" "))
            }
            (None, Some(d)) => {
                let list: Vec<String> = numbers(d)?.into_iter().map(v1_number).collect();
                format!("YD{interval} {}", list.join(" "))
            }
            (None, None) => format!("YM{interval}"),
            _ => return None,
        },
        _ => return None,
    };
    match (count, until_v) {
        (Some(c), _) => out.push_str(&format!(" #{c}")),
        (None, Some(u)) => {
            out.push(' ');
            out.push_str(&until(&u));
        }
        (None, None) => out.push_str(" #0"),
    }
    Some(out)
}

fn status_to_v1(s: &str) -> String {
    match s {
        "NEEDS-ACTION" => "NEEDS ACTION".into(),
        "CANCELLED" => "DECLINED".into(),
        other => other.into(),
    }
}

fn status_from_v1(s: &str) -> String {
    match s.trim().to_ascii_uppercase().as_str() {
        "NEEDS ACTION" => "NEEDS-ACTION".into(),
        "DECLINED" => "CANCELLED".into(),
        other => other.into(),
    }
}

fn alarm_to_v1(a: &Alarm, comp: &CalComponent, item: &CalendarItem) -> Option<Property> {
    let name = match a.action.as_deref() {
        Some("DISPLAY") | None => "DALARM",
        Some("AUDIO") => "AALARM",
        _ => return None,
    };
    let when = match a.trigger.as_ref()? {
        Trigger::Absolute(t) => to_v1(t, item),
        Trigger::Relative {
            seconds,
            related_end,
        } => {
            let base = if *related_end {
                comp.end.as_ref().or(comp.due.as_ref())
            } else {
                comp.start.as_ref().or(comp.due.as_ref())
            }?;
            match to_v1(base, item) {
                CalTime::Utc(t) => CalTime::Utc(t.add_seconds(*seconds)),
                CalTime::Date(d) => CalTime::Floating(LocalTime::midnight(d).add_seconds(*seconds)),
                other => CalTime::Floating(other.local().add_seconds(*seconds)),
            }
        }
    };
    let snooze = a.repeat_interval.map(format_duration).unwrap_or_default();
    let repeat = a.repeat.map(|r| r.to_string()).unwrap_or_default();
    let text = if name == "DALARM" {
        escape_text(a.description.as_deref().unwrap_or_default())
    } else {
        String::new()
    };
    Some(Property {
        group: None,
        name: name.into(),
        params: Vec::new(),
        value: format!("{};{snooze};{repeat};{text}", when.value_text()),
    })
}

fn component_to_v1(
    comp: &CalComponent,
    kind: CalendarKind,
    item: &CalendarItem,
    extra_exdates: &[CalTime],
) -> Component {
    let mut c = Component::new(kind.component());
    if let Some(u) = &comp.uid {
        c.push_text("UID", u);
    }
    if let Some(r) = &comp.recurrence_id {
        c.props.push(time_prop("RECURRENCE-ID", &to_v1(r, item)));
    }
    if let Some(s) = &comp.summary {
        c.push_text("SUMMARY", s);
    }
    if let Some(s) = &comp.description {
        c.push_text("DESCRIPTION", s);
    }
    if let Some(s) = &comp.location {
        c.push_text("LOCATION", s);
    }
    let end = comp.end.clone().or_else(|| {
        let (start, d) = (comp.start.as_ref()?, comp.duration?);
        (kind == CalendarKind::Event).then(|| match start {
            CalTime::Date(day) => CalTime::Date(day.add_days(d.div_euclid(86_400))),
            CalTime::Utc(t) => CalTime::Utc(t.add_seconds(d)),
            CalTime::Floating(t) => CalTime::Floating(t.add_seconds(d)),
            CalTime::Zoned { tzid, time } => CalTime::Zoned {
                tzid: tzid.clone(),
                time: time.add_seconds(d),
            },
        })
    });
    let all_day = match (&comp.start, &end) {
        (Some(CalTime::Date(s)), Some(CalTime::Date(e))) => Some((*s, *e)),
        _ => None,
    };
    if let Some((s, e)) = all_day {
        // Midnight of the first day to the last second of the last day: what 1.0
        // readers (and the SyncML server) take as all-day. A date-only DTEND is not read
        // the same everywhere (inclusive or exclusive).
        let last = e.add_days(-1).max(s);
        let end_of_day = LocalTime::new(last, 23, 59, 59).unwrap_or(LocalTime::midnight(last));
        c.props.push(time_prop(
            "DTSTART",
            &CalTime::Floating(LocalTime::midnight(s)),
        ));
        c.props
            .push(time_prop("DTEND", &CalTime::Floating(end_of_day)));
    } else if let Some(start) = &comp.start {
        c.props.push(time_prop("DTSTART", &to_v1(start, item)));
    }
    match &end {
        _ if all_day.is_some() => {}
        // An end date after a start that is not a date: the inclusive last day.
        Some(CalTime::Date(e)) => c
            .props
            .push(time_prop("DTEND", &CalTime::Date(e.add_days(-1)))),
        Some(other) => c.props.push(time_prop("DTEND", &to_v1(other, item))),
        None => {}
    }
    if let Some(due) = &comp.due {
        c.props.push(time_prop("DUE", &to_v1(due, item)));
    }
    if let Some(t) = &comp.completed {
        c.props.push(time_prop("COMPLETED", &to_v1(t, item)));
    }
    for r in &comp.rrules {
        let until =
            |u: &str| match CalTime::parse(u, comp.start.as_ref().and_then(|s| s.tzid()), None) {
                Some(t) => to_v1(&t, item).value_text(),
                None => u.to_string(),
            };
        if let Some(v1) = rrule_to_v1(r, until) {
            c.push_raw("RRULE", &v1);
        }
    }
    let mut exdates: Vec<CalTime> = comp.exdates.iter().map(|x| to_v1(x, item)).collect();
    for x in extra_exdates {
        let x = to_v1(x, item);
        if !exdates.contains(&x) {
            exdates.push(x);
        }
    }
    for x in &exdates {
        c.props.push(time_prop("EXDATE", x));
    }
    if let Some(s) = &comp.status {
        c.push_raw("STATUS", &status_to_v1(s));
    }
    if let Some(n) = comp.priority {
        c.push_raw("PRIORITY", &n.to_string());
    }
    if let Some(s) = &comp.class {
        c.push_raw("CLASS", s);
    }
    if !comp.categories.is_empty() {
        let list: Vec<String> = comp.categories.iter().map(|s| escape_text(s)).collect();
        c.push_raw("CATEGORIES", &list.join(";"));
    }
    if let Some(n) = comp.sequence {
        c.push_raw("SEQUENCE", &n.to_string());
    }
    if let Some(t) = &comp.created {
        c.props.push(time_prop("DCREATED", &to_v1(t, item)));
    }
    if let Some(t) = &comp.last_modified {
        c.props.push(time_prop("LAST-MODIFIED", &to_v1(t, item)));
    }
    for p in &comp.extra {
        match p.name.as_str() {
            "TRANSP" => c.push_raw(
                "TRANSP",
                if p.value.trim().eq_ignore_ascii_case("TRANSPARENT") {
                    "1"
                } else {
                    "0"
                },
            ),
            "URL" | "RESOURCES" | "ATTACH" => c.props.push(p.clone()),
            n if n.starts_with("X-") && p.params.iter().all(|q| q.name != "TZID") => {
                c.props.push(p.clone())
            }
            _ => {}
        }
    }
    for a in &comp.alarms {
        if let Some(p) = alarm_to_v1(a, comp, item) {
            c.props.push(p);
        }
    }
    c
}

/// The vCalendar 1.0 text of `item`.
pub fn write(item: &CalendarItem) -> Vec<u8> {
    let mut cal = Component::new("VCALENDAR");
    cal.push_raw("PRODID", PRODID);
    let moved: Vec<CalTime> = item
        .instances
        .iter()
        .filter_map(|i| i.recurrence_id.clone())
        .collect();
    if let Some(m) = &item.master {
        cal.subs.push(component_to_v1(m, item.kind, item, &moved));
    }
    for i in &item.instances {
        cal.subs.push(component_to_v1(i, item.kind, item, &[]));
    }
    let mut out = String::with_capacity(1024);
    ical::write_legacy(&mut out, &cal, Some("1.0"));
    out.into_bytes()
}

// ------------------------------------------------------------------ reading

/// A 1.0 time value, with floating times moved to UTC by `tz_offset` (seconds).
fn from_v1_time(v: &str, tz_offset: Option<i32>) -> Option<CalTime> {
    match CalTime::parse(v, None, None)? {
        CalTime::Floating(t) => Some(match tz_offset {
            Some(off) => CalTime::Utc(t.add_seconds(-i64::from(off))),
            None => CalTime::Floating(t),
        }),
        other => Some(other),
    }
}

/// A 1.0 `RRULE` in 2.0 syntax.
pub fn rrule_from_v1(rule: &str, tz_offset: Option<i32>) -> Option<String> {
    let mut tokens: Vec<&str> = rule.split_whitespace().collect();
    let first = tokens.first()?.to_ascii_uppercase();
    let split = first.find(|c: char| c.is_ascii_digit())?;
    let (kind, interval) = first.split_at(split);
    let interval: u32 = interval.parse().ok().filter(|&i| i >= 1)?;
    tokens.remove(0);
    // The end: "#n" or an end date; none means "#2" (versit 1.0).
    let mut end = "COUNT=2".to_string();
    if let Some(last) = tokens.last() {
        if let Some(n) = last.strip_prefix('#') {
            let n: u32 = n.parse().ok()?;
            end = if n == 0 {
                String::new()
            } else {
                format!("COUNT={n}")
            };
            tokens.pop();
        } else if last.len() >= 8 && last.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
            let t = from_v1_time(last, tz_offset)?;
            end = format!("UNTIL={}", t.value_text());
            tokens.pop();
        }
    }
    let number = |t: &str| -> Option<i32> {
        let t = t.to_ascii_uppercase();
        if t == "LD" {
            return Some(-1);
        }
        match t.strip_suffix('-') {
            Some(n) => n.parse::<i32>().ok().map(|n| -n),
            None => t.trim_end_matches('+').parse().ok(),
        }
    };
    let weekday = |t: &str| {
        WEEKDAYS
            .iter()
            .find(|w| w.eq_ignore_ascii_case(t))
            .map(|w| w.to_string())
    };
    let (freq, by) = match kind {
        "D" if tokens.is_empty() => ("DAILY", String::new()),
        "W" => {
            let days: Option<Vec<String>> = tokens.iter().map(|t| weekday(t)).collect();
            let days = days?;
            (
                "WEEKLY",
                if days.is_empty() {
                    String::new()
                } else {
                    format!("BYDAY={}", days.join(","))
                },
            )
        }
        "MP" => {
            let mut ords = Vec::new();
            let mut days = Vec::new();
            for t in &tokens {
                match weekday(t) {
                    Some(d) => days.push(d),
                    None if days.is_empty() => ords.push(number(t).filter(|&n| n != 0)?),
                    None => return None,
                }
            }
            if ords.is_empty() || days.is_empty() {
                return None;
            }
            let list: Vec<String> = ords
                .iter()
                .flat_map(|o| days.iter().map(move |d| format!("{o}{d}")))
                .collect();
            ("MONTHLY", format!("BYDAY={}", list.join(",")))
        }
        "MD" => {
            let days: Option<Vec<String>> = tokens
                .iter()
                .map(|t| number(t).filter(|&n| n != 0).map(|n| n.to_string()))
                .collect();
            let days = days?;
            (
                "MONTHLY",
                if days.is_empty() {
                    String::new()
                } else {
                    format!("BYMONTHDAY={}", days.join(","))
                },
            )
        }
        "YM" => {
            let months: Option<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    number(t)
                        .filter(|n| (1..=12).contains(n))
                        .map(|n| n.to_string())
                })
                .collect();
            let months = months?;
            (
                "YEARLY",
                if months.is_empty() {
                    String::new()
                } else {
                    format!("BYMONTH={}", months.join(","))
                },
            )
        }
        "YD" => {
            let days: Option<Vec<String>> = tokens
                .iter()
                .map(|t| number(t).filter(|&n| n != 0).map(|n| n.to_string()))
                .collect();
            let days = days?;
            (
                "YEARLY",
                if days.is_empty() {
                    String::new()
                } else {
                    format!("BYYEARDAY={}", days.join(","))
                },
            )
        }
        _ => return None,
    };
    let mut parts = vec![format!("FREQ={freq}")];
    if interval != 1 {
        parts.push(format!("INTERVAL={interval}"));
    }
    if !end.is_empty() {
        parts.push(end);
    }
    if !by.is_empty() {
        parts.push(by);
    }
    Some(parts.join(";"))
}

struct V1Alarm {
    audio: bool,
    time: CalTime,
    snooze: Option<i64>,
    repeat: Option<u32>,
    text: Option<String>,
}

fn parse_v1_alarm(p: &Property, tz_offset: Option<i32>) -> Option<V1Alarm> {
    let parts = split_escaped(&p.value, ';');
    let time = from_v1_time(parts.first()?.trim(), tz_offset)?;
    let snooze = parts.get(1).and_then(|s| parse_duration(s));
    let repeat = parts.get(2).and_then(|s| s.trim().parse().ok());
    let text = parts
        .get(3)
        .map(|s| unescape_text(s))
        .filter(|s| !s.is_empty());
    Some(V1Alarm {
        audio: p.name == "AALARM",
        time,
        snooze,
        repeat,
        text,
    })
}

/// Converts a 1.0 component's properties to their 2.0 form; returns the component and
/// its 1.0 alarms.
fn component_from_v1(c: Component, tz_offset: Option<i32>) -> (Component, Vec<V1Alarm>) {
    let mut out = Component::new(&c.name);
    let mut alarms = Vec::new();
    for p in c.props {
        let name = p.name.clone();
        match name.as_str() {
            "DTSTART" | "DTEND" | "DUE" | "COMPLETED" | "RECURRENCE-ID" | "LAST-MODIFIED"
            | "DCREATED" | "CREATED" | "EXDATE"
                if p.group.is_none() =>
            {
                let target = if name == "DCREATED" {
                    "CREATED"
                } else {
                    name.as_str()
                };
                let times: Option<Vec<CalTime>> = p
                    .value
                    .split([',', ';'])
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| from_v1_time(v.trim(), tz_offset))
                    .collect();
                match times {
                    Some(times) if !times.is_empty() => out
                        .props
                        .extend(times.iter().map(|t| t.to_property(target))),
                    _ => out.props.push(p),
                }
            }
            "RRULE" => match rrule_from_v1(&unescape_text(&p.value), tz_offset) {
                Some(r) => out.push_raw("RRULE", &r),
                None => out.props.push(Property {
                    name: "X-VCAL10-RRULE".into(),
                    ..p
                }),
            },
            "CATEGORIES" => {
                let items: Vec<String> = split_escaped(&p.value, ';')
                    .into_iter()
                    .flat_map(|s| split_escaped(s, ','))
                    .map(|s| escape_text(unescape_text(s).trim()))
                    .filter(|s| !s.is_empty())
                    .collect();
                out.push_raw("CATEGORIES", &items.join(","));
            }
            "STATUS" => out.push_raw("STATUS", &status_from_v1(&p.value)),
            "TRANSP" => out.push_raw(
                "TRANSP",
                if p.value.trim() == "0" || p.value.trim().eq_ignore_ascii_case("OPAQUE") {
                    "OPAQUE"
                } else {
                    "TRANSPARENT"
                },
            ),
            "AALARM" | "DALARM" => match parse_v1_alarm(&p, tz_offset) {
                Some(a) => alarms.push(a),
                None => out.props.push(p),
            },
            _ => out.props.push(p),
        }
    }
    (out, alarms)
}

fn is_end_of_day(t: &LocalTime) -> bool {
    (t.hour, t.minute) == (23, 59)
}

/// Fixes all-day values and attaches the alarms (relative to the start when possible).
fn finish_v1(comp: &mut CalComponent, alarms: Vec<V1Alarm>) {
    match (&comp.start, &comp.end) {
        (Some(CalTime::Date(_)), Some(CalTime::Date(e))) => {
            comp.end = Some(CalTime::Date(e.add_days(1)))
        }
        (Some(CalTime::Floating(s)), Some(CalTime::Floating(e)))
            if (s.hour, s.minute, s.second) == (0, 0, 0)
                && is_end_of_day(e)
                && e.date >= s.date =>
        {
            comp.start = Some(CalTime::Date(s.date));
            comp.end = Some(CalTime::Date(e.date.add_days(1)));
        }
        _ => {}
    }
    let mut out: Vec<Alarm> = Vec::new();
    let mut seen: Vec<CalTime> = Vec::new();
    // A DALARM and an AALARM at the same time are one alarm (DISPLAY wins).
    let mut sorted = alarms;
    sorted.sort_by_key(|a| a.audio);
    for a in sorted {
        if seen.contains(&a.time) {
            continue;
        }
        seen.push(a.time.clone());
        let base = comp.start.as_ref().or(comp.due.as_ref());
        let trigger = match (base, &a.time) {
            (Some(CalTime::Utc(s)), CalTime::Utc(t))
            | (Some(CalTime::Floating(s)), CalTime::Floating(t)) => Trigger::Relative {
                seconds: t.seconds() - s.seconds(),
                related_end: false,
            },
            (Some(CalTime::Date(d)), CalTime::Floating(t)) => Trigger::Relative {
                seconds: t.seconds() - LocalTime::midnight(*d).seconds(),
                related_end: false,
            },
            _ => Trigger::Absolute(a.time.clone()),
        };
        out.push(Alarm {
            action: Some(if a.audio { "AUDIO" } else { "DISPLAY" }.into()),
            trigger: Some(trigger),
            description: if a.audio {
                None
            } else {
                Some(a.text.unwrap_or_default())
            },
            repeat: a.repeat.filter(|&r| r > 0),
            repeat_interval: a.snooze.filter(|_| a.repeat.is_some_and(|r| r > 0)),
            ..Default::default()
        });
    }
    comp.alarms.extend(out);
}

/// Reads a vCalendar 1.0 item.
pub fn read(parsed: ical::Parsed) -> Result<CalendarItem, ItemError> {
    let mut comps = Vec::new();
    let mut tz_offset = None;
    for c in parsed.components {
        if c.name == "VCALENDAR" {
            tz_offset = c.prop("TZ").and_then(|p| parse_utc_offset(&p.value));
            comps.extend(c.subs);
        } else {
            comps.push(c);
        }
    }
    let mut converted = Vec::new();
    let mut alarms = Vec::new();
    for c in comps {
        if CalendarKind::from_component(&c.name).is_none() {
            return Err(ItemError::Malformed(format!(
                "unsupported component {} in vCalendar 1.0",
                c.name
            )));
        }
        let (c, a) = component_from_v1(c, tz_offset);
        converted.push(c);
        alarms.push(a);
    }
    // Build the item, then fix each component (alarms, all-day) by position.
    let comps_typed: Vec<CalComponent> = converted
        .iter()
        .cloned()
        .map(CalComponent::from_component)
        .collect();
    let mut item = CalendarItem::from_components(converted)?;
    for (typed, a) in comps_typed.into_iter().zip(alarms) {
        let target = if typed.recurrence_id.is_none() {
            item.master.as_mut()
        } else {
            item.instances
                .iter_mut()
                .find(|i| i.recurrence_id == typed.recurrence_id)
        };
        if let Some(t) = target {
            finish_v1(t, a);
        }
    }
    let moved: Vec<CalTime> = item
        .instances
        .iter()
        .filter_map(|i| i.recurrence_id.clone())
        .collect();
    if let Some(m) = item.master.as_mut() {
        m.exdates.retain(|x| !moved.contains(x));
    }
    Ok(item)
}
