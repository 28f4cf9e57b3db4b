//! Calendars, task lists and memo lists on the test side, independent of the
//! service's code:
//!
//! * [`CalendarList`]: a zbus client of EDS's `system-calendar`,
//!   `system-task-list` and `system-memo-list` (create in batches, detached
//!   instances, modify, remove, list with the referenced `VTIMEZONE`s);
//! * an iCalendar / vCalendar reader ([`parse`]) and a canonical form of
//!   every compared field ([`canonical`]) in which times are **UTC instants**:
//!   a `TZID` is resolved with the item's own `VTIMEZONE` (simple yearly
//!   `STANDARD`/`DAYLIGHT` rules), else with the Olson rules of
//!   Europe/Berlin written here ([`berlin_offset`]);
//! * generators of realistic events (weekly series with `EXDATE` and a moved
//!   occurrence, all-day events, alarms, Europe/Berlin and UTC), tasks and
//!   memos ([`events`], [`tasks`], [`memos`]), each with a test key.
//!
//! Compared fields (everything else, e.g. `DTSTAMP`, `CREATED`,
//! `LAST-MODIFIED`, `PRODID`, `X-*`, `SEQUENCE`, `TRANSP`, is not): `SUMMARY`,
//! `DESCRIPTION`, `LOCATION`, `DTSTART`, `DTEND` (or `DTSTART` + `DURATION`),
//! `DUE`, `RRULE`, `EXDATE`, `RECURRENCE-ID`, `STATUS`, `PRIORITY`,
//! `CATEGORIES` and per `VALARM` the action and when it fires relative to the
//! start. [`CAL_REWRITES`] lists what may differ in the compared fields.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::vcard::{self, Property};
use crate::{timeout, Result};

pub const CALENDAR_FACTORY_NAME: &str = "org.gnome.evolution.dataserver.Calendar8";
pub const CALENDAR_FACTORY_PATH: &str = "/org/gnome/evolution/dataserver/CalendarFactory";
pub const CALENDAR_FACTORY_IFACE: &str = "org.gnome.evolution.dataserver.CalendarFactory";
pub const CALENDAR_IFACE: &str = "org.gnome.evolution.dataserver.Calendar";

/// Objects per CreateObjects / RemoveObjects call.
pub const BATCH: usize = 200;
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What may differ between what was seeded and what came back (server
/// store, or EDS after a restore) in the compared fields.
pub const CAL_REWRITES: &[&str] = &[
    "times: compared as UTC instants (TZID resolved with the item's VTIMEZONE or the Olson rules of Europe/Berlin); dates as dates",
    "DTEND may be given as DURATION (compared as DTSTART + DURATION)",
    "RRULE: part order, INTERVAL=1 and WKST=MO (defaults) may be added or dropped, UNTIL compared as an instant",
    "EXDATE: order, comma lists vs one property each; an EXDATE equal to a detached instance's RECURRENCE-ID (vCalendar 1.0 writes those) is ignored",
    "VALARM: only ACTION and the trigger (relative to the start, an absolute trigger converted) are compared",
    "text: compared after unescaping, trailing whitespace ignored",
    "CATEGORIES compared as a set",
    "a DESCRIPTION equal to the SUMMARY where the original had none (the Synthesis engine fills it in when it sends an item)",
];

// ------------------------------------------------------------------ EDS client

/// Which EDS list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Events,
    Tasks,
    Memos,
}

impl ListKind {
    pub fn source_uid(self) -> &'static str {
        match self {
            ListKind::Events => "system-calendar",
            ListKind::Tasks => "system-task-list",
            ListKind::Memos => "system-memo-list",
        }
    }

    fn open_method(self) -> &'static str {
        match self {
            ListKind::Events => "OpenCalendar",
            ListKind::Tasks => "OpenTaskList",
            ListKind::Memos => "OpenMemoList",
        }
    }

    /// `VEVENT`, `VTODO`, `VJOURNAL`.
    pub fn component(self) -> &'static str {
        match self {
            ListKind::Events => "VEVENT",
            ListKind::Tasks => "VTODO",
            ListKind::Memos => "VJOURNAL",
        }
    }

    /// The imsync data class.
    pub fn class(self) -> &'static str {
        match self {
            ListKind::Events => "calendar",
            ListKind::Tasks => "tasks",
            ListKind::Memos => "notes",
        }
    }
}

/// An opened EDS calendar / task list / memo list (own connection).
pub struct CalendarList {
    pub kind: ListKind,
    conn: zbus::Connection,
    proxy: zbus::Proxy<'static>,
}

impl CalendarList {
    /// Open the system list of `kind` on the bus at `address`.
    pub async fn open_system(address: &str, kind: ListKind) -> Result<CalendarList> {
        let conn = zbus::connection::Builder::address(address)?.build().await?;
        crate::eds::wait_for_source(&conn, kind.source_uid(), Duration::from_secs(60)).await?;
        let proxy = Self::open_proxy(&conn, kind).await?;
        Ok(CalendarList { kind, conn, proxy })
    }

    async fn open_proxy(conn: &zbus::Connection, kind: ListKind) -> Result<zbus::Proxy<'static>> {
        let f = zbus::Proxy::new(conn, CALENDAR_FACTORY_NAME, CALENDAR_FACTORY_PATH, CALENDAR_FACTORY_IFACE).await?;
        let (path, bus_name): (String, String) =
            timeout(CALL_TIMEOUT, f.call(kind.open_method(), &(kind.source_uid(),))).await??;
        let p = zbus::proxy::Builder::<zbus::Proxy>::new(conn)
            .destination(bus_name)?
            .path(path)?
            .interface(CALENDAR_IFACE)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let _props: Vec<String> = timeout(CALL_TIMEOUT, p.call("Open", &())).await??;
        Ok(p)
    }

    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    /// CreateObjects (bare components, batches of [`BATCH`]); returns the UIDs.
    pub async fn create(&self, comps: &[String]) -> Result<Vec<String>> {
        let mut out = vec![];
        for chunk in comps.chunks(BATCH) {
            let got: Vec<String> = timeout(CALL_TIMEOUT, self.proxy.call("CreateObjects", &(chunk, 0u32))).await??;
            out.extend(got);
        }
        Ok(out)
    }

    /// ModifyObjects with `mod_type` (`all`, `this`, ...).
    pub async fn modify(&self, comps: &[String], mod_type: &str) -> Result<()> {
        for chunk in comps.chunks(BATCH) {
            let () = timeout(CALL_TIMEOUT, self.proxy.call("ModifyObjects", &(chunk, mod_type, 0u32))).await??;
        }
        Ok(())
    }

    /// RemoveObjects of whole objects (master and instances).
    pub async fn remove(&self, uids: &[String]) -> Result<()> {
        for chunk in uids.chunks(BATCH) {
            let pairs: Vec<(&str, &str)> = chunk.iter().map(|u| (u.as_str(), "")).collect();
            let () = timeout(CALL_TIMEOUT, self.proxy.call("RemoveObjects", &(pairs, "all", 0u32))).await??;
        }
        Ok(())
    }

    /// GetObjectList("#t"): masters and detached instances, one string each.
    pub async fn list_raw(&self) -> Result<Vec<String>> {
        Ok(timeout(CALL_TIMEOUT, self.proxy.call("GetObjectList", &("#t",))).await??)
    }

    /// The UIDs of every object.
    pub async fn uids(&self) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for o in self.list_raw().await? {
            for c in parse(&o).into_iter().flat_map(|c| c.flatten()) {
                if let Some(u) = c.text("UID") {
                    set.insert(u);
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    /// Remove everything; returns how many objects there were.
    pub async fn remove_all(&self) -> Result<usize> {
        let uids = self.uids().await?;
        self.remove(&uids).await?;
        Ok(uids.len())
    }

    /// Every object grouped by UID, with the `VTIMEZONE`s of its TZIDs
    /// (GetTimezone; Olson zones resolve without AddTimezone).
    pub async fn objects(&self) -> Result<Vec<CalObject>> {
        let raw = self.list_raw().await?;
        let comps: Vec<Comp> = raw.iter().flat_map(|o| parse(o)).flat_map(|c| c.flatten()).collect();
        let mut objs = group(comps);
        let mut zones: HashMap<String, Option<Comp>> = HashMap::new();
        for o in &mut objs {
            for tzid in o.tzids() {
                if !zones.contains_key(&tzid) {
                    let z: Option<Comp> = match timeout(CALL_TIMEOUT, self.proxy.call::<_, _, String>("GetTimezone", &(tzid.as_str(),))).await? {
                        Ok(text) => parse(&text).into_iter().flat_map(|c| c.flatten_all()).find(|c| c.name == "VTIMEZONE"),
                        Err(_) => None,
                    };
                    zones.insert(tzid.clone(), z);
                }
                if let Some(Some(z)) = zones.get(&tzid) {
                    o.zones.push(z.clone());
                }
            }
        }
        Ok(objs)
    }
}

// ------------------------------------------------------------------ parsing

/// One component with its properties (unfolded, raw values) and sub-components.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comp {
    pub name: String,
    pub props: Vec<Property>,
    pub subs: Vec<Comp>,
}

impl Comp {
    pub fn all(&self, name: &str) -> impl Iterator<Item = &Property> {
        let name = name.to_ascii_uppercase();
        self.props.iter().filter(move |p| p.name == name)
    }

    pub fn first(&self, name: &str) -> Option<&Property> {
        self.all(name).next()
    }

    /// Unescaped text of the first `name` (quoted-printable decoded).
    pub fn text(&self, name: &str) -> Option<String> {
        self.first(name).map(prop_text)
    }

    /// The item components inside (VCALENDAR unwrapped); VTIMEZONEs are
    /// dropped (see [`Comp::flatten_all`]).
    pub fn flatten(self) -> Vec<Comp> {
        self.flatten_all().into_iter().filter(|c| c.name != "VTIMEZONE").collect()
    }

    /// Like `flatten`, keeping VTIMEZONEs.
    pub fn flatten_all(self) -> Vec<Comp> {
        if self.name == "VCALENDAR" {
            self.subs
        } else {
            vec![self]
        }
    }
}

/// Text of a property: quoted-printable decoded (vCalendar 1.0), unescaped.
pub fn prop_text(p: &Property) -> String {
    let qp = p.param("ENCODING").iter().any(|e| e.eq_ignore_ascii_case("QUOTED-PRINTABLE"));
    if qp {
        let bytes = qp_decode(&p.value);
        let s = String::from_utf8_lossy(&bytes).into_owned();
        // 1.0 escapes only ';' (and '\\')
        return s.replace("\\;", ";").replace("\\\\", "\\").replace("\r\n", "\n");
    }
    vcard::unescape(&p.value)
}

fn qp_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 && i + 3 <= b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = h {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Parse iCalendar / vCalendar text into its top-level components.
/// Quoted-printable soft line breaks (`=` at a line end) are joined.
pub fn parse(text: &str) -> Vec<Comp> {
    let unfolded = vcard::unfold(text);
    // join quoted-printable soft breaks
    let mut lines: Vec<String> = vec![];
    for l in unfolded.split('\n') {
        let l = l.trim_end_matches('\r');
        if let Some(last) = lines.last_mut() {
            if last.to_ascii_uppercase().contains("QUOTED-PRINTABLE") && last.ends_with('=') {
                last.pop();
                last.push_str(l);
                continue;
            }
        }
        lines.push(l.to_string());
    }
    let mut stack: Vec<Comp> = vec![];
    let mut out = vec![];
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let Some(p) = vcard::parse_line(&line) else { continue };
        match p.name.as_str() {
            "BEGIN" => stack.push(Comp { name: p.value.trim().to_ascii_uppercase(), ..Default::default() }),
            "END" => {
                if let Some(c) = stack.pop() {
                    match stack.last_mut() {
                        Some(parent) => parent.subs.push(c),
                        None => out.push(c),
                    }
                }
            }
            _ => {
                if let Some(c) = stack.last_mut() {
                    c.props.push(p);
                }
            }
        }
    }
    out
}

/// One logical object: components of one UID and the time zones in reach.
#[derive(Clone, Debug, Default)]
pub struct CalObject {
    pub uid: String,
    pub comps: Vec<Comp>,
    pub zones: Vec<Comp>,
}

impl CalObject {
    pub fn master(&self) -> Option<&Comp> {
        self.comps.iter().find(|c| c.first("RECURRENCE-ID").is_none() && c.first("X-RECURRENCE-ID").is_none())
    }

    /// TZIDs referenced by the components.
    pub fn tzids(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        for c in &self.comps {
            for p in &c.props {
                for t in p.param("TZID") {
                    s.insert(t.to_string());
                }
            }
        }
        s
    }
}

/// Group item components by UID (sorted by UID).
pub fn group(comps: Vec<Comp>) -> Vec<CalObject> {
    let mut m: BTreeMap<String, CalObject> = BTreeMap::new();
    for c in comps {
        let uid = c.text("UID").unwrap_or_default().trim().to_string();
        let o = m.entry(uid.clone()).or_insert_with(|| CalObject { uid, ..Default::default() });
        o.comps.push(c);
    }
    m.into_values().collect()
}

/// Every object of a file (VCALENDAR with VTIMEZONEs and item components).
pub fn parse_objects(text: &str) -> Vec<CalObject> {
    let all: Vec<Comp> = parse(text).into_iter().flat_map(|c| c.flatten_all()).collect();
    let zones: Vec<Comp> = all.iter().filter(|c| c.name == "VTIMEZONE").cloned().collect();
    let mut objs = group(all.into_iter().filter(|c| c.name != "VTIMEZONE").collect());
    for o in &mut objs {
        o.zones = zones.clone();
    }
    objs
}

// ------------------------------------------------------------------ time

/// Days since 1970-01-01 (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// 0 = Monday .. 6 = Sunday.
pub fn weekday(days: i64) -> u32 {
    (days + 3).rem_euclid(7) as u32
}

fn days_in_month(y: i64, m: u32) -> u32 {
    (days_from_civil(if m == 12 { y + 1 } else { y }, if m == 12 { 1 } else { m + 1 }, 1) - days_from_civil(y, m, 1)) as u32
}

/// The `n`th (negative: from the end) weekday `wd` (0 = Monday) of a month.
pub fn nth_weekday(y: i64, m: u32, n: i32, wd: u32) -> i64 {
    if n > 0 {
        let first = days_from_civil(y, m, 1);
        let delta = (wd as i64 - weekday(first) as i64).rem_euclid(7);
        first + delta + 7 * (n as i64 - 1)
    } else {
        let last = days_from_civil(y, m, days_in_month(y, m));
        let delta = (weekday(last) as i64 - wd as i64).rem_euclid(7);
        last - delta - 7 * ((-n) as i64 - 1)
    }
}

/// Seconds of a wall-clock time since 1970-01-01T00:00:00 (no zone).
pub fn local_secs(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y, mo, d) * 86400 + (h * 3600 + mi * 60 + s) as i64
}

/// `YYYYMMDDTHHMMSSZ` of epoch seconds.
pub fn format_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let r = secs.rem_euclid(86400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", r / 3600, r / 60 % 60, r % 60)
}

/// `YYYYMMDDTHHMMSS` of wall-clock seconds.
pub fn format_local(secs: i64) -> String {
    let mut s = format_utc(secs);
    s.pop();
    s
}

/// `YYYYMMDD` of a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

/// A parsed date or date-time value: (wall-clock seconds, is UTC, is a date).
pub fn parse_time(v: &str) -> Option<(i64, bool, bool)> {
    let v = v.trim();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let date = date.replace('-', "");
    if date.len() != 8 || !digits(&date) {
        return None;
    }
    let (y, m, d) = (date[0..4].parse().ok()?, date[4..6].parse().ok()?, date[6..8].parse().ok()?);
    match time {
        None => Some((days_from_civil(y, m, d) * 86400, false, true)),
        Some(t) => {
            let utc = t.ends_with('Z') || t.ends_with('z');
            let t = t.trim_end_matches(['Z', 'z']).replace(':', "");
            if t.len() < 6 || !digits(&t[..6]) {
                return None;
            }
            let (h, mi, s) = (t[0..2].parse().ok()?, t[2..4].parse().ok()?, t[4..6].parse().ok()?);
            Some((local_secs(y, m, d, h, mi, s), utc, false))
        }
    }
}

/// UTC offset (seconds east) of Europe/Berlin at wall-clock time `local`
/// (EU rules since 1996: CEST from the last Sunday of March 02:00 to the
/// last Sunday of October 03:00).
pub fn berlin_offset(local: i64) -> i64 {
    let (y, _, _) = civil_from_days(local.div_euclid(86400));
    let start = nth_weekday(y, 3, -1, 6) * 86400 + 2 * 3600;
    let end = nth_weekday(y, 10, -1, 6) * 86400 + 3 * 3600;
    if local >= start && local < end {
        7200
    } else {
        3600
    }
}

fn parse_offset(v: &str) -> Option<i64> {
    let v = v.trim();
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => (1, v),
    };
    let rest = rest.replace(':', "");
    if rest.len() < 4 {
        return None;
    }
    let h: i64 = rest[0..2].parse().ok()?;
    let m: i64 = rest[2..4].parse().ok()?;
    let s: i64 = if rest.len() >= 6 { rest[4..6].parse().ok()? } else { 0 };
    Some(sign * (h * 3600 + m * 60 + s))
}

/// UTC offset at wall-clock `local` from a `VTIMEZONE` (STANDARD / DAYLIGHT
/// with a DTSTART, optional yearly `RRULE` with BYMONTH + BYDAY, and RDATEs).
pub fn vtimezone_offset(vtz: &Comp, local: i64) -> Option<i64> {
    let (year, _, _) = civil_from_days(local.div_euclid(86400));
    // (onset wall clock, offset after, offset before)
    let mut onsets: Vec<(i64, i64, i64)> = vec![];
    for obs in vtz.subs.iter().filter(|s| s.name == "STANDARD" || s.name == "DAYLIGHT") {
        let to = parse_offset(&obs.first("TZOFFSETTO")?.value)?;
        let from = obs.first("TZOFFSETFROM").and_then(|p| parse_offset(&p.value)).unwrap_or(to);
        let (start, _, _) = parse_time(&obs.first("DTSTART")?.value)?;
        onsets.push((start, to, from));
        for rd in obs.all("RDATE") {
            for v in rd.value.split(',') {
                if let Some((t, _, _)) = parse_time(v) {
                    onsets.push((t, to, from));
                }
            }
        }
        if let Some(rule) = obs.first("RRULE") {
            let parts: HashMap<String, String> = rule
                .value
                .split(';')
                .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_ascii_uppercase(), v.to_ascii_uppercase())))
                .collect();
            // yearly, or (Synthesis engine) monthly with INTERVAL=12 in DTSTART's month
            let yearly = match parts.get("FREQ").map(String::as_str) {
                Some("YEARLY") => true,
                Some("MONTHLY") => parts.get("INTERVAL").map(String::as_str) == Some("12"),
                _ => false,
            };
            if !yearly {
                continue;
            }
            let month: u32 = match parts.get("BYMONTH") {
                Some(m) => m.parse().ok()?,
                None => civil_from_days(start.div_euclid(86400)).1,
            };
            let byday = parts.get("BYDAY")?;
            let (n, wd) = byday.split_at(byday.len() - 2);
            let n: i32 = if n.is_empty() { 1 } else { n.trim_start_matches('+').parse().ok()? };
            let wd = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"].iter().position(|d| *d == wd)? as u32;
            let until = parts.get("UNTIL").and_then(|u| parse_time(u)).map(|t| t.0);
            let tod = start.rem_euclid(86400);
            let (sy, _, _) = civil_from_days(start.div_euclid(86400));
            for y in (year - 1)..=year {
                if y < sy {
                    continue;
                }
                let t = nth_weekday(y, month, n, wd) * 86400 + tod;
                if until.is_some_and(|u| t > u + 86400) {
                    continue;
                }
                onsets.push((t, to, from));
            }
        }
    }
    onsets.sort();
    match onsets.iter().rev().find(|(t, _, _)| *t <= local) {
        Some((_, to, _)) => Some(*to),
        None => onsets.first().map(|(_, _, from)| *from),
    }
}

/// A resolved time value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    /// Seconds since the epoch, UTC.
    Utc(i64),
    /// A date (day number).
    Date(i64),
    /// A wall-clock time without a zone.
    Floating(i64),
    /// A TZID that could not be resolved.
    Unresolved(String),
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            When::Utc(s) => write!(f, "{}", format_utc(*s)),
            When::Date(d) => write!(f, "date {}", format_date(*d)),
            When::Floating(s) => write!(f, "floating {}", format_local(*s)),
            When::Unresolved(s) => write!(f, "unresolved {s}"),
        }
    }
}

/// Resolve a zoned wall-clock time.
pub fn resolve_zoned(tzid: &str, local: i64, zones: &[Comp]) -> When {
    let vtz = zones.iter().find(|z| z.text("TZID").is_some_and(|t| t.trim() == tzid.trim()));
    if let Some(off) = vtz.and_then(|z| vtimezone_offset(z, local)) {
        return When::Utc(local - off);
    }
    if tzid.ends_with("Europe/Berlin") {
        return When::Utc(local - berlin_offset(local));
    }
    if tzid.eq_ignore_ascii_case("UTC") || tzid.ends_with("/UTC") {
        return When::Utc(local);
    }
    When::Unresolved(tzid.to_string())
}

/// Resolve one value of a time property.
pub fn resolve_value(p: &Property, v: &str, zones: &[Comp]) -> Option<When> {
    let (t, utc, date) = parse_time(v)?;
    let is_date = date || p.param("VALUE").iter().any(|x| x.eq_ignore_ascii_case("DATE"));
    Some(if is_date {
        When::Date(t.div_euclid(86400))
    } else if utc {
        When::Utc(t)
    } else if let Some(tz) = p.param("TZID").first() {
        resolve_zoned(tz, t, zones)
    } else {
        When::Floating(t)
    })
}

/// Resolve every value of a (possibly comma-separated) time property.
pub fn resolve(p: &Property, zones: &[Comp]) -> Vec<When> {
    p.value.split(',').filter(|v| !v.trim().is_empty()).filter_map(|v| resolve_value(p, v, zones)).collect()
}

/// A `DURATION` value in seconds (`-PT15M`, `P1D`, `PT1H30M`, `P1W`).
pub fn parse_duration(v: &str) -> Option<i64> {
    let v = v.trim();
    let (sign, rest) = match v.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = 0i64;
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' => {}
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                total += n * match c {
                    'W' => 7 * 86400,
                    'D' => 86400,
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    Some(sign * total)
}

// ------------------------------------------------------------------ canonical form

fn instant_secs(w: &When) -> Option<i64> {
    match w {
        When::Utc(s) => Some(*s),
        When::Date(d) => Some(d * 86400),
        When::Floating(s) => Some(*s),
        When::Unresolved(_) => None,
    }
}

/// `UNTIL` = the last occurrence, for a `COUNT` of a simple daily or weekly
/// rule (the Synthesis engine rewrites COUNT that way).
fn count_to_until(value: &str, zones: &[Comp], dtstart: Option<&Property>) -> Option<When> {
    let parts: HashMap<String, String> = value
        .split(';')
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_ascii_uppercase())))
        .collect();
    let count: i64 = parts.get("COUNT")?.parse().ok()?;
    let interval: i64 = parts.get("INTERVAL").and_then(|i| i.parse().ok()).unwrap_or(1);
    let p = dtstart?;
    let (t, utc, date) = parse_time(&p.value)?;
    let step = match parts.get("FREQ")?.as_str() {
        "DAILY" => 86400,
        "WEEKLY" => {
            let wd = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][weekday(t.div_euclid(86400)) as usize];
            if parts.get("BYDAY").is_some_and(|b| b != wd) {
                return None;
            }
            7 * 86400
        }
        _ => return None,
    };
    let last = t + (count - 1) * interval * step;
    let q = Property { value: if date { format_date(last.div_euclid(86400)) } else if utc { format_utc(last) } else { format_local(last) }, ..p.clone() };
    resolve_value(&q, &q.value, zones)
}

fn normalise_rrule(value: &str, zones: &[Comp], dtstart: Option<&Property>) -> String {
    let mut parts: Vec<String> = vec![];
    if let Some(until) = count_to_until(value, zones, dtstart) {
        let rest: Vec<&str> = value.split(';').filter(|p| !p.trim().to_ascii_uppercase().starts_with("COUNT=")).collect();
        parts.push(format!("UNTIL={until}"));
        return normalise_rrule_parts(&rest.join(";"), zones, dtstart, parts);
    }
    normalise_rrule_parts(value, zones, dtstart, parts)
}

fn normalise_rrule_parts(value: &str, zones: &[Comp], dtstart: Option<&Property>, mut parts: Vec<String>) -> String {
    for part in value.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = part.split_once('=') else { continue };
        let k = k.trim().to_ascii_uppercase();
        let v = v.trim().to_ascii_uppercase();
        match (k.as_str(), v.as_str()) {
            ("INTERVAL", "1") | ("WKST", "MO") => continue,
            ("UNTIL", _) => {
                // UNTIL: an instant (a floating UNTIL takes DTSTART's zone)
                let w = match parse_time(&v) {
                    Some((t, true, _)) => When::Utc(t),
                    Some((t, false, true)) => When::Date(t.div_euclid(86400)),
                    Some((t, false, false)) => match dtstart.and_then(|p| p.param("TZID").first().map(|s| s.to_string())) {
                        Some(tz) => resolve_zoned(&tz, t, zones),
                        None => When::Floating(t),
                    },
                    None => When::Unresolved(v.clone()),
                };
                parts.push(format!("UNTIL={w}"));
            }
            _ => parts.push(format!("{k}={v}")),
        }
    }
    parts.sort();
    parts.join(";")
}

/// The compared fields of one component, name → sorted values.
pub fn canonical(c: &Comp, zones: &[Comp], ignore_exdates: &BTreeSet<When>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut put = |k: &str, v: String| m.entry(k.to_string()).or_default().push(v);
    let start_p = c.first("DTSTART");
    let start = start_p.and_then(|p| resolve(p, zones).into_iter().next());
    for p in &c.props {
        match p.name.as_str() {
            "SUMMARY" | "DESCRIPTION" | "LOCATION" => {
                let t = prop_text(p).replace("\r\n", "\n");
                let t = t.trim_end();
                if !t.is_empty() {
                    put(&p.name, t.to_string());
                }
            }
            "DTSTART" | "DTEND" | "DUE" | "RECURRENCE-ID" => {
                for w in resolve(p, zones) {
                    put(&p.name, w.to_string());
                }
            }
            "X-RECURRENCE-ID" => {
                for w in resolve(p, zones) {
                    put("RECURRENCE-ID", w.to_string());
                }
            }
            "DURATION" if c.first("DTEND").is_none() && c.name == "VEVENT" => {
                if let (Some(d), Some(s)) = (parse_duration(&p.value), start.as_ref()) {
                    let end = match s {
                        When::Utc(x) => When::Utc(x + d),
                        When::Date(x) => When::Date(x + d / 86400),
                        When::Floating(x) => When::Floating(x + d),
                        other => other.clone(),
                    };
                    put("DTEND", end.to_string());
                }
            }
            "RRULE" => put("RRULE", normalise_rrule(&p.value, zones, start_p)),
            "EXDATE" => {
                for w in resolve(p, zones) {
                    if !ignore_exdates.contains(&w) {
                        put("EXDATE", w.to_string());
                    }
                }
            }
            "STATUS" => put("STATUS", p.value.trim().to_ascii_uppercase().replace(' ', "-")),
            "PRIORITY" => {
                let v = p.value.trim();
                if !v.is_empty() && v != "0" {
                    put("PRIORITY", v.to_string());
                }
            }
            "CATEGORIES" => {
                for cat in vcard::split_unescaped(&p.value, ',') {
                    let t = vcard::unescape(&cat);
                    if !t.trim().is_empty() {
                        put("CATEGORIES", t.trim().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    for a in c.subs.iter().filter(|s| s.name == "VALARM") {
        let action = a.text("ACTION").unwrap_or_default().trim().to_ascii_uppercase();
        let trig = a.first("TRIGGER").map(|t| {
            let related_end = t.param("RELATED").iter().any(|r| r.eq_ignore_ascii_case("END"));
            if let Some(d) = parse_duration(&t.value) {
                format!("{}{d:+}s", if related_end { "end" } else { "start" })
            } else {
                let abs = resolve(t, zones).into_iter().next();
                match (abs.as_ref().and_then(instant_secs), start.as_ref().and_then(instant_secs)) {
                    (Some(a), Some(s)) => format!("start{:+}s", a - s),
                    _ => format!("at {}", abs.map(|a| a.to_string()).unwrap_or_default()),
                }
            }
        });
        put("VALARM", format!("{action} {}", trig.unwrap_or_default()));
    }
    // vCalendar 1.0 alarms
    for p in c.all("DALARM").chain(c.all("AALARM")) {
        let action = if p.name == "DALARM" { "DISPLAY" } else { "AUDIO" };
        let first = p.value.split(';').next().unwrap_or("");
        let q = Property { value: first.to_string(), ..p.clone() };
        let abs = resolve(&q, zones).into_iter().next();
        let trig = match (abs.as_ref().and_then(instant_secs), start.as_ref().and_then(instant_secs)) {
            (Some(a), Some(s)) => format!("start{:+}s", a - s),
            _ => format!("at {first}"),
        };
        m.entry("VALARM".into()).or_default().push(format!("{action} {trig}"));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Differences between an expected and an actual object (empty = equal in
/// the compared fields). Components are matched by their RECURRENCE-ID.
pub fn compare_objects(expected: &CalObject, actual: &CalObject) -> Vec<String> {
    let key = |o: &CalObject, c: &Comp| -> String {
        c.first("RECURRENCE-ID")
            .or(c.first("X-RECURRENCE-ID"))
            .and_then(|p| resolve(p, &o.zones).into_iter().next())
            .map(|w| w.to_string())
            .unwrap_or_else(|| "master".into())
    };
    let rids = |o: &CalObject| -> BTreeSet<When> {
        o.comps
            .iter()
            .filter_map(|c| c.first("RECURRENCE-ID").or(c.first("X-RECURRENCE-ID")))
            .filter_map(|p| resolve(p, &o.zones).into_iter().next())
            .collect()
    };
    let (er, ar) = (rids(expected), rids(actual));
    let mut diffs = vec![];
    let e: BTreeMap<String, &Comp> = expected.comps.iter().map(|c| (key(expected, c), c)).collect();
    let a: BTreeMap<String, &Comp> = actual.comps.iter().map(|c| (key(actual, c), c)).collect();
    if actual.comps.len() != a.len() {
        diffs.push(format!("{} components with the same RECURRENCE-ID", actual.comps.len() - a.len() + 1));
    }
    for (k, ec) in &e {
        match a.get(k) {
            None => diffs.push(format!("component {k} missing")),
            Some(ac) => {
                // vCalendar 1.0 carries detached instances as EXDATEs on the master too
                let ef = canonical(ec, &expected.zones, &er);
                let mut af = canonical(ac, &actual.zones, &ar);
                // the server fills an empty DESCRIPTION with the SUMMARY when it sends an item
                if !ef.contains_key("DESCRIPTION") && af.contains_key("DESCRIPTION") && af.get("DESCRIPTION") == af.get("SUMMARY") {
                    af.remove("DESCRIPTION");
                }
                for name in ef.keys().chain(af.keys()).collect::<BTreeSet<_>>() {
                    let (ev, av) = (ef.get(name).cloned().unwrap_or_default(), af.get(name).cloned().unwrap_or_default());
                    if ev != av {
                        diffs.push(format!("{k} {name}: expected {ev:?}, got {av:?}"));
                    }
                }
            }
        }
    }
    for k in a.keys().filter(|k| !e.contains_key(*k)) {
        diffs.push(format!("unexpected component {k}"));
    }
    diffs
}

/// Compare expected objects with actual ones, matched by UID. With
/// `exact`, nothing else may be there.
pub fn compare_sets(expected: &[CalObject], actual: &[CalObject], exact: bool) -> Vec<String> {
    let mut problems = vec![];
    let mut by_uid: BTreeMap<&str, Vec<&CalObject>> = BTreeMap::new();
    for a in actual {
        by_uid.entry(a.uid.as_str()).or_default().push(a);
    }
    for e in expected {
        match by_uid.remove(e.uid.as_str()) {
            None => problems.push(format!("{}: missing", e.uid)),
            Some(found) => {
                if found.len() > 1 {
                    problems.push(format!("{}: {} copies", e.uid, found.len()));
                }
                for d in compare_objects(e, found[0]) {
                    problems.push(format!("{}: {d}", e.uid));
                }
            }
        }
    }
    if exact {
        for (uid, _) in by_uid {
            problems.push(format!("{uid}: unexpected"));
        }
    }
    problems
}

/// Panic with a readable list when `problems` is not empty.
pub fn assert_no_problems(what: &str, problems: &[String], context: &str) {
    if !problems.is_empty() {
        panic!(
            "{what}: {} problems (first 40):\n{}\n\nallowed rewrites:\n - {}\n{context}",
            problems.len(),
            problems.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
            CAL_REWRITES.join("\n - ")
        );
    }
}

// ------------------------------------------------------------------ memos as text

/// A memo as stored as plain text: (summary = first line, text = the rest),
/// line breaks normalised, trailing whitespace dropped.
pub fn plain_memo(bytes: &[u8]) -> (String, String) {
    let t = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    let t = t.trim_end();
    match t.split_once('\n') {
        Some((s, rest)) => (s.trim_end().to_string(), rest.trim_end().to_string()),
        None => (t.to_string(), String::new()),
    }
}

/// (summary, description) of a memo object.
pub fn memo_fields(o: &CalObject) -> (String, String) {
    let m = o.master().or(o.comps.first());
    let get = |n: &str| m.and_then(|c| c.text(n)).map(|t| t.replace("\r\n", "\n").trim_end().to_string()).unwrap_or_default();
    (get("SUMMARY"), get("DESCRIPTION"))
}

// ------------------------------------------------------------------ test data

/// One generated object: what goes into EDS (a master through CreateObjects,
/// detached instances through ModifyObjects "this").
#[derive(Clone, Debug)]
pub struct CalSpec {
    pub uid: String,
    pub kind: ListKind,
    pub master: String,
    pub instances: Vec<String>,
}

impl CalSpec {
    /// The object as seeded, parsed (times resolve with the Olson table).
    pub fn expected(&self) -> CalObject {
        let mut comps: Vec<Comp> = parse(&self.master);
        for i in &self.instances {
            comps.extend(parse(i));
        }
        CalObject { uid: self.uid.clone(), comps, zones: vec![] }
    }

    /// The memo's (summary, description).
    pub fn memo(&self) -> (String, String) {
        memo_fields(&self.expected())
    }

    /// Change the summary (and the instances' summaries).
    pub fn edit(&mut self, tag: &str) {
        let f = |s: &str| {
            s.lines()
                .map(|l| if l.starts_with("SUMMARY:") { format!("{l} ({tag})") } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n"
        };
        self.master = f(&self.master);
        self.instances = self.instances.iter().map(|i| f(i)).collect();
    }
}

fn ical_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

fn fold(line: &str) -> String {
    vcard::fold(line)
}

fn comp(lines: &[String]) -> String {
    lines.iter().map(|l| fold(l) + "\r\n").collect::<String>()
}

const WORDS: &[&str] = &[
    "Stand-up", "Zahnarzt", "Café", "Größe prüfen", "Übergabe", "Sprint review", "Déjeuner", "Frühstück", "Kita", "Yoga",
    "Ölwechsel", "会议", "Встреча", "Fußball", "Steuer",
];

/// `count` events of run `run`: every 20th a weekly Europe/Berlin series
/// (10 Mondays, the 3rd excluded with EXDATE, the 5th moved by an hour as a
/// detached instance), every 20th+1 a daily UTC series with an EXDATE,
/// every 10th+2/+3 all-day (one or two days), every 10th+4/+5 with an alarm
/// (15 minutes, one day before); the rest timed, alternately Europe/Berlin
/// and UTC, spread over winter and summer time.
pub fn events(run: &str, count: usize) -> Vec<CalSpec> {
    (0..count).map(|n| event(run, n)).collect()
}

pub fn event_uid(run: &str, n: usize) -> String {
    format!("imt-{run}-ev-{n:04}@imsync.test")
}

pub fn event(run: &str, n: usize) -> CalSpec {
    let uid = event_uid(run, n);
    let word = WORDS[n % WORDS.len()];
    let day0 = days_from_civil(2024, 1, 1) + (n as i64 * 37) % 600; // spread over 2024-2025
    let hour = 8 + (n % 9) as u32;
    let mut l: Vec<String> = vec![
        "BEGIN:VEVENT".into(),
        format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z".into(),
        format!("SUMMARY:{}", ical_escape(&format!("{word} #{n} [e{run}]"))),
    ];
    if n.is_multiple_of(3) {
        l.push(format!("LOCATION:{}", ical_escape(&format!("Raum {}, Haus {}; 2. OG", n % 7, n % 5))));
    }
    if n % 4 == 1 {
        l.push(format!("DESCRIPTION:{}", ical_escape(&format!("Notizen zu #{n}:\nbitte mitbringen; Unterlagen, Stift\nÄrger vermeiden"))));
    }
    let mut instances = vec![];
    let berlin = |days: i64, h: u32, mi: u32| format_local(days * 86400 + (h * 3600 + mi * 60) as i64);
    match n % 20 {
        0 => {
            // Monday on/after day0 (in March, so the series crosses the DST change sometimes)
            let monday = day0 + (7 - weekday(day0) as i64) % 7;
            l.push(format!("DTSTART;TZID=Europe/Berlin:{}", berlin(monday, 9, 30)));
            l.push(format!("DTEND;TZID=Europe/Berlin:{}", berlin(monday, 9, 45)));
            l.push("RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO".into());
            l.push(format!("EXDATE;TZID=Europe/Berlin:{}", berlin(monday + 14, 9, 30)));
            l.push("CATEGORIES:Work,Team".into());
            instances.push(comp(&[
                "BEGIN:VEVENT".into(),
                format!("UID:{uid}"),
                "DTSTAMP:20240101T120000Z".into(),
                format!("RECURRENCE-ID;TZID=Europe/Berlin:{}", berlin(monday + 28, 9, 30)),
                format!("DTSTART;TZID=Europe/Berlin:{}", berlin(monday + 28, 10, 30)),
                format!("DTEND;TZID=Europe/Berlin:{}", berlin(monday + 28, 10, 45)),
                format!("SUMMARY:{}", ical_escape(&format!("{word} #{n} [e{run}] (moved)"))),
                "END:VEVENT".into(),
            ]));
        }
        1 => {
            let t = day0 * 86400 + (hour * 3600) as i64;
            l.push(format!("DTSTART:{}", format_utc(t)));
            l.push(format!("DTEND:{}", format_utc(t + 1800)));
            l.push("RRULE:FREQ=DAILY;COUNT=5".into());
            l.push(format!("EXDATE:{}", format_utc(t + 2 * 86400)));
        }
        2 | 3 | 12 | 13 => {
            let len = if n % 20 == 3 { 2 } else { 1 };
            l.push(format!("DTSTART;VALUE=DATE:{}", format_date(day0)));
            l.push(format!("DTEND;VALUE=DATE:{}", format_date(day0 + len)));
            l.push("TRANSP:TRANSPARENT".into());
        }
        _ => {
            if n.is_multiple_of(2) {
                l.push(format!("DTSTART;TZID=Europe/Berlin:{}", berlin(day0, hour, 15)));
                l.push(format!("DTEND;TZID=Europe/Berlin:{}", berlin(day0, hour + 1, 0)));
            } else {
                let t = day0 * 86400 + (hour * 3600) as i64;
                l.push(format!("DTSTART:{}", format_utc(t)));
                l.push(format!("DTEND:{}", format_utc(t + 3600)));
            }
        }
    }
    if matches!(n % 10, 4 | 5) {
        let trig = if n % 10 == 4 { "-PT15M" } else { "-P1D" };
        l.extend([
            "BEGIN:VALARM".to_string(),
            "ACTION:DISPLAY".into(),
            format!("TRIGGER;RELATED=START:{trig}"),
            format!("DESCRIPTION:{}", ical_escape(&format!("{word} #{n}"))),
            "END:VALARM".into(),
        ]);
    }
    l.push("END:VEVENT".into());
    CalSpec { uid, kind: ListKind::Events, master: comp(&l), instances }
}

/// `count` tasks: DUE alternately UTC, Europe/Berlin and a date; STATUS
/// NEEDS-ACTION / IN-PROCESS / COMPLETED; PRIORITY 1, 5, 9.
pub fn tasks(run: &str, count: usize) -> Vec<CalSpec> {
    (0..count).map(|n| task(run, n)).collect()
}

pub fn task(run: &str, n: usize) -> CalSpec {
    let uid = format!("imt-{run}-task-{n:04}@imsync.test");
    let word = WORDS[(n * 7) % WORDS.len()];
    let day = days_from_civil(2024, 2, 1) + (n as i64 * 11) % 500;
    let mut l: Vec<String> = vec![
        "BEGIN:VTODO".into(),
        format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z".into(),
        format!("SUMMARY:{}", ical_escape(&format!("Aufgabe: {word} #{n} [t{run}]"))),
    ];
    match n % 3 {
        0 => l.push(format!("DUE:{}", format_utc(day * 86400 + 17 * 3600))),
        1 => l.push(format!("DUE;TZID=Europe/Berlin:{}", format_local(day * 86400 + 18 * 3600 + 1800))),
        _ => l.push(format!("DUE;VALUE=DATE:{}", format_date(day))),
    }
    let status = ["NEEDS-ACTION", "IN-PROCESS", "COMPLETED"][(n / 3) % 3];
    let status = if n % 5 == 4 { "COMPLETED" } else { status };
    l.push(format!("STATUS:{status}"));
    if status == "COMPLETED" {
        l.push(format!("COMPLETED:{}", format_utc(day * 86400 - 3600)));
        l.push("PERCENT-COMPLETE:100".into());
    }
    l.push(format!("PRIORITY:{}", [1, 5, 9][n % 3]));
    if n.is_multiple_of(2) {
        l.push(format!("DESCRIPTION:{}", ical_escape(&format!("Schritt 1; Schritt 2, dann\nSchritt 3 für #{n}"))));
    }
    l.push("END:VTODO".into());
    CalSpec { uid, kind: ListKind::Tasks, master: comp(&l), instances: vec![] }
}

/// `count` memos: a summary with the test key `[m<run>-n]` and a multi-line
/// UTF-8 text.
pub fn memos(run: &str, count: usize) -> Vec<CalSpec> {
    (0..count).map(|n| memo(run, n)).collect()
}

pub fn memo_key(run: &str, n: usize) -> String {
    format!("[m{run}-{n}]")
}

pub fn memo(run: &str, n: usize) -> CalSpec {
    let uid = format!("imt-{run}-memo-{n:04}@imsync.test");
    let word = WORDS[(n * 3) % WORDS.len()];
    let day = days_from_civil(2024, 3, 1) + n as i64;
    let text = format!("Erste Zeile über {word}\nZweite Zeile; mit Komma, und Semikolon\n\nNach einer Leerzeile: {n} × Grüße");
    let l: Vec<String> = vec![
        "BEGIN:VJOURNAL".into(),
        format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z".into(),
        format!("DTSTART;VALUE=DATE:{}", format_date(day)),
        format!("SUMMARY:{}", ical_escape(&format!("Notiz {word} {}", memo_key(run, n)))),
        format!("DESCRIPTION:{}", ical_escape(&text)),
        "END:VJOURNAL".into(),
    ];
    CalSpec { uid, kind: ListKind::Memos, master: comp(&l), instances: vec![] }
}

/// Seed specs into an opened list: masters in batches, then the detached
/// instances. Returns the UIDs EDS reports (same as the specs').
pub async fn seed(list: &CalendarList, specs: &[CalSpec]) -> Result<Vec<String>> {
    let masters: Vec<String> = specs.iter().map(|s| s.master.clone()).collect();
    let uids = list.create(&masters).await?;
    let instances: Vec<String> = specs.iter().flat_map(|s| s.instances.iter().cloned()).collect();
    for i in &instances {
        list.modify(std::slice::from_ref(i), "this").await?;
    }
    Ok(uids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_berlin() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday(days_from_civil(2024, 1, 1)), 0); // Monday
        assert_eq!(format_date(nth_weekday(2024, 3, -1, 6)), "20240331");
        assert_eq!(format_date(nth_weekday(2024, 10, -1, 6)), "20241027");
        assert_eq!(berlin_offset(local_secs(2024, 1, 15, 9, 0, 0)), 3600);
        assert_eq!(berlin_offset(local_secs(2024, 7, 15, 9, 0, 0)), 7200);
        assert_eq!(parse_duration("-PT15M"), Some(-900));
        assert_eq!(parse_duration("-P1D"), Some(-86400));
    }

    #[test]
    fn vtimezone_matches_the_olson_table() {
        let vtz = "BEGIN:VTIMEZONE\r\nTZID:/x/Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        let z = parse(vtz).remove(0);
        for (m, d) in [(1, 10), (3, 30), (4, 1), (7, 1), (10, 26), (10, 28), (12, 31)] {
            let t = local_secs(2025, m, d, 12, 0, 0);
            assert_eq!(vtimezone_offset(&z, t), Some(berlin_offset(t)), "2025-{m}-{d}");
        }
    }

    #[test]
    fn synthesis_vtimezone_and_count_as_until() {
        let vtz = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19671029T030000\r\nRRULE:FREQ=MONTHLY;INTERVAL=12;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19870329T020000\r\nRRULE:FREQ=MONTHLY;INTERVAL=12;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        let z = parse(vtz).remove(0);
        for (m, d) in [(1, 5), (3, 30), (4, 1), (7, 1), (10, 26), (10, 28), (12, 31)] {
            let t = local_secs(2025, m, d, 12, 0, 0);
            assert_eq!(vtimezone_offset(&z, t), Some(berlin_offset(t)), "2025-{m}-{d}");
        }
        let start = vcard::parse_line("DTSTART:20240207T090000Z").unwrap();
        assert_eq!(
            normalise_rrule("FREQ=DAILY;COUNT=5", &[], Some(&start)),
            normalise_rrule("FREQ=DAILY;INTERVAL=1;UNTIL=20240211T090000Z", &[], Some(&start))
        );
        let start = vcard::parse_line("DTSTART;TZID=Europe/Berlin:20240617T093000").unwrap();
        assert_eq!(
            normalise_rrule("FREQ=WEEKLY;COUNT=10;BYDAY=MO", &[], Some(&start)),
            normalise_rrule("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20240819T073000Z", &[], Some(&start))
        );
    }

    #[test]
    fn generated_events_compare_equal_to_themselves() {
        for s in events("abc", 40).iter().chain(&tasks("abc", 10)).chain(&memos("abc", 5)) {
            let e = s.expected();
            assert!(compare_objects(&e, &e).is_empty(), "{}", s.master);
            let c = canonical(e.master().unwrap(), &[], &BTreeSet::new());
            assert!(!c.get("DTSTART").or(c.get("DUE")).or(c.get("SUMMARY")).unwrap().is_empty());
        }
        let s = event("abc", 0);
        assert_eq!(s.instances.len(), 1);
        let c = canonical(s.expected().master().unwrap(), &[], &BTreeSet::new());
        assert_eq!(c["EXDATE"].len(), 1);
        assert!(c["DTSTART"][0].ends_with('Z'), "{c:?}");
    }
}
