//! The typed calendar item of the common item model: an event, task or memo (journal) —
//! a master component and/or detached `RECURRENCE-ID` instances of one UID, and the
//! `VTIMEZONE`s they reference — and its iCalendar 2.0 form.
//!
//! Stores and servers keep one component per item (SyncEvolution stores one `VEVENT` per
//! item and blends a second one into the first), so sources yield the master and each
//! detached instance as items of their own ([`CalendarItem::split`]), told apart by
//! [`CalendarItem::identity`] (`uid`, or `uid` + [`INSTANCE_ID_SEPARATOR`] + recurrence
//! id). An item received with several components is still read and written whole.
//!
//! As for contacts, a property becomes a typed field only if the field represents it
//! completely (no group, only the parameters the field models, the first occurrence of a
//! single-valued property). Everything else stays verbatim in `extra`, in input order.
//!
//! ## EDS-internal data (never put on the wire)
//! * every `X-EVOLUTION-*` *parameter* (`RRULE;X-EVOLUTION-ENDDATE=…`: the computed end
//!   of a series, recomputed by EDS on every write);
//! * the properties in [`INTERNAL_PROPERTIES`]: `X-EVOLUTION-ALARM-UID` (EDS numbers
//!   each VALARM itself and regenerates the number on write), libical's `X-LIC-ERROR`
//!   annotations, the file backend's `X-EVOLUTION-DATA-REVISION`, and the CalDAV/WebDAV
//!   cache bookkeeping (`X-EVOLUTION-CALDAV-*`, `X-EVOLUTION-WEBDAV-*`).
//!
//! Everything else the user or another client set is user data and kept, including other
//! `X-EVOLUTION-*` properties, `DTSTAMP`, `CREATED`, `LAST-MODIFIED` and `SEQUENCE`.

use super::caltime::{format_duration, parse_duration, CalTime};
use super::ical::{self, Component};
use super::vcard::{escape_text, split_escaped, unescape_text, Property};
use super::ItemError;

/// Properties that only make sense inside evolution-data-server.
pub const INTERNAL_PROPERTIES: &[&str] = &[
    "X-EVOLUTION-ALARM-UID",
    "X-LIC-ERROR",
    "X-EVOLUTION-DATA-REVISION",
];
/// Prefixes of properties that only make sense inside evolution-data-server.
pub const INTERNAL_PREFIXES: &[&str] = &["X-EVOLUTION-CALDAV-", "X-EVOLUTION-WEBDAV-"];

/// The `PRODID` imsync writes (no version: the output must not change with upgrades).
pub const PRODID: &str = "-//imsync//NONSGML imsync//EN";

fn is_internal(name: &str) -> bool {
    INTERNAL_PROPERTIES.contains(&name) || INTERNAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Separates the UID from the `RECURRENCE-ID` in the id of a detached instance that
/// travels as its own item ([`instance_id`]): the ASCII unit separator, which occurs in
/// neither (a UID is printable text, a recurrence id a date or date-time).
pub const INSTANCE_ID_SEPARATOR: char = '\u{1f}';

/// The id of one component of a recurring series: `uid` for the master (`rid` `None`),
/// `uid` + [`INSTANCE_ID_SEPARATOR`] + `rid` for the detached instance `rid`.
pub fn instance_id(uid: &str, rid: Option<&str>) -> String {
    match rid {
        Some(rid) => format!("{uid}{INSTANCE_ID_SEPARATOR}{rid}"),
        None => uid.to_string(),
    }
}

/// Splits an id built by [`instance_id`] into the UID and the recurrence id (`None`:
/// the master, or an id without separator).
pub fn split_instance_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(INSTANCE_ID_SEPARATOR) {
        Some((uid, rid)) => (uid, Some(rid)),
        None => (id, None),
    }
}

/// What a calendar item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarKind {
    /// `VEVENT` (data class calendar).
    Event,
    /// `VTODO` (data class tasks).
    Task,
    /// `VJOURNAL` (data class notes: memos).
    Journal,
}

impl CalendarKind {
    /// The component name (`VEVENT`, `VTODO`, `VJOURNAL`).
    pub fn component(self) -> &'static str {
        match self {
            CalendarKind::Event => "VEVENT",
            CalendarKind::Task => "VTODO",
            CalendarKind::Journal => "VJOURNAL",
        }
    }

    pub fn from_component(name: &str) -> Option<CalendarKind> {
        match name {
            "VEVENT" => Some(CalendarKind::Event),
            "VTODO" => Some(CalendarKind::Task),
            "VJOURNAL" => Some(CalendarKind::Journal),
            _ => None,
        }
    }
}

/// When an alarm fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Seconds relative to the start (or to the end / due time when `related_end`).
    Relative { seconds: i64, related_end: bool },
    /// An absolute time (UTC in valid data).
    Absolute(CalTime),
}

/// A `VALARM`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Alarm {
    /// `ACTION` (`DISPLAY`, `AUDIO`, `EMAIL`), upper-case.
    pub action: Option<String>,
    pub trigger: Option<Trigger>,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub repeat: Option<u32>,
    /// `DURATION` between repeats, seconds.
    pub repeat_interval: Option<i64>,
    /// Other properties (ATTACH, ATTENDEE, X-…) in input order.
    pub extra: Vec<Property>,
}

/// One `VEVENT` / `VTODO` / `VJOURNAL`: the master or one detached instance. Text fields
/// hold unescaped text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CalComponent {
    pub uid: Option<String>,
    /// Set on detached instances only.
    pub recurrence_id: Option<CalTime>,
    pub dtstamp: Option<CalTime>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    /// `DTSTART`.
    pub start: Option<CalTime>,
    /// `DTEND` (exclusive; for all-day events the day after the last day).
    pub end: Option<CalTime>,
    /// `DUE` (tasks).
    pub due: Option<CalTime>,
    /// `DURATION`, seconds.
    pub duration: Option<i64>,
    /// `COMPLETED` (tasks).
    pub completed: Option<CalTime>,
    /// `RRULE` values (without EDS's `X-EVOLUTION-ENDDATE`), usually zero or one.
    pub rrules: Vec<String>,
    /// `EXDATE` values, one per date (comma lists are split).
    pub exdates: Vec<CalTime>,
    /// `STATUS`, upper-case (`CONFIRMED`, `NEEDS-ACTION`, `COMPLETED`, …).
    pub status: Option<String>,
    /// `PRIORITY` 0–9.
    pub priority: Option<u8>,
    /// `PERCENT-COMPLETE` 0–100.
    pub percent_complete: Option<u8>,
    /// `CLASS` (`PUBLIC`, `PRIVATE`, `CONFIDENTIAL`), upper-case.
    pub class: Option<String>,
    pub categories: Vec<String>,
    pub sequence: Option<u32>,
    pub created: Option<CalTime>,
    pub last_modified: Option<CalTime>,
    pub alarms: Vec<Alarm>,
    /// Every other property, in input order.
    pub extra: Vec<Property>,
    /// Sub-components other than `VALARM`, verbatim.
    pub extra_components: Vec<Component>,
}

/// A calendar object: master and/or detached instances of one UID, with the referenced
/// time zones. Sources yield one component per item (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CalendarItem {
    pub kind: CalendarKind,
    /// The master (`None` for detached instances whose master is not stored).
    pub master: Option<CalComponent>,
    /// Detached instances, sorted by `RECURRENCE-ID`.
    pub instances: Vec<CalComponent>,
    /// The `VTIMEZONE`s referenced by a `TZID`, sorted by TZID.
    pub timezones: Vec<Component>,
}

fn plain(p: &Property, allowed: &[&str]) -> bool {
    p.group.is_none() && p.params.iter().all(|q| allowed.contains(&q.name.as_str()))
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

fn single_time(p: &Property) -> Option<CalTime> {
    let mut v = CalTime::from_property(p)?;
    (v.len() == 1).then(|| v.remove(0))
}

fn take_time(slot: &mut Option<CalTime>, p: &Property) -> bool {
    if slot.is_some() {
        return false;
    }
    match single_time(p) {
        Some(t) => set_once(slot, t),
        None => false,
    }
}

/// The TZID of a `VTIMEZONE`.
pub fn timezone_id(vtz: &Component) -> Option<String> {
    vtz.text("TZID").map(|t| t.trim().to_string())
}

impl Alarm {
    fn from_component(c: Component) -> Alarm {
        let mut a = Alarm::default();
        for mut p in c.props {
            p.params.retain(|q| !q.name.starts_with("X-EVOLUTION-"));
            if is_internal(&p.name) {
                continue;
            }
            let taken = match p.name.as_str() {
                "ACTION" if plain(&p, &[]) && a.action.is_none() => {
                    set_once(&mut a.action, p.value.trim().to_ascii_uppercase())
                }
                "TRIGGER" if a.trigger.is_none() => match Alarm::parse_trigger(&p) {
                    Some(t) => set_once(&mut a.trigger, t),
                    None => false,
                },
                "DESCRIPTION" if plain(&p, &[]) => set_once(&mut a.description, p.text_value()),
                "SUMMARY" if plain(&p, &[]) => set_once(&mut a.summary, p.text_value()),
                "REPEAT" if plain(&p, &[]) && a.repeat.is_none() => match p.value.trim().parse() {
                    Ok(n) => set_once(&mut a.repeat, n),
                    Err(_) => false,
                },
                "DURATION" if plain(&p, &[]) && a.repeat_interval.is_none() => {
                    match parse_duration(&p.value) {
                        Some(s) => set_once(&mut a.repeat_interval, s),
                        None => false,
                    }
                }
                _ => false,
            };
            if !taken {
                a.extra.push(p);
            }
        }
        a
    }

    fn parse_trigger(p: &Property) -> Option<Trigger> {
        if !plain(p, &["VALUE", "RELATED"]) {
            return None;
        }
        let value_type = p.param_values("VALUE").next().map(str::to_ascii_uppercase);
        if value_type.as_deref() == Some("DATE-TIME")
            || (value_type.is_none() && !p.value.trim_start().starts_with(['-', '+', 'P', 'p']))
        {
            if p.params.iter().any(|q| q.name == "RELATED") {
                return None;
            }
            return CalTime::parse(&p.value, None, None).map(Trigger::Absolute);
        }
        let related_end = match p.param_values("RELATED").next() {
            None => false,
            Some(r) if r.eq_ignore_ascii_case("START") => false,
            Some(r) if r.eq_ignore_ascii_case("END") => true,
            Some(_) => return None,
        };
        parse_duration(&p.value).map(|seconds| Trigger::Relative {
            seconds,
            related_end,
        })
    }

    fn to_component(&self) -> Component {
        let mut c = Component::new("VALARM");
        if let Some(a) = &self.action {
            c.push_raw("ACTION", a);
        }
        match &self.trigger {
            Some(Trigger::Relative {
                seconds,
                related_end,
            }) => {
                let mut p = Property {
                    group: None,
                    name: "TRIGGER".into(),
                    params: Vec::new(),
                    value: format_duration(*seconds),
                };
                if *related_end {
                    p.params.push(ical::param("RELATED", "END"));
                }
                c.props.push(p);
            }
            Some(Trigger::Absolute(t)) => {
                let mut p = t.to_property("TRIGGER");
                p.params.retain(|q| q.name != "VALUE");
                p.params.insert(0, ical::param("VALUE", "DATE-TIME"));
                c.props.push(p);
            }
            None => {}
        }
        if let Some(d) = &self.description {
            c.push_text("DESCRIPTION", d);
        }
        if let Some(s) = &self.summary {
            c.push_text("SUMMARY", s);
        }
        if let Some(r) = self.repeat {
            c.push_raw("REPEAT", &r.to_string());
        }
        if let Some(d) = self.repeat_interval {
            c.push_raw("DURATION", &format_duration(d));
        }
        c.props.extend(self.extra.iter().cloned());
        c
    }
}

impl CalComponent {
    /// Builds the typed component from a parsed `VEVENT`/`VTODO`/`VJOURNAL`.
    pub fn from_component(c: Component) -> CalComponent {
        let mut out = CalComponent::default();
        for mut p in c.props {
            p.params.retain(|q| !q.name.starts_with("X-EVOLUTION-"));
            if is_internal(&p.name) {
                continue;
            }
            if !out.take(&p) {
                out.extra.push(p);
            }
        }
        for sub in c.subs {
            if sub.name == "VALARM" {
                out.alarms.push(Alarm::from_component(sub));
            } else {
                out.extra_components.push(sub);
            }
        }
        out
    }

    fn take(&mut self, p: &Property) -> bool {
        const TIME: &[&str] = &["VALUE", "TZID"];
        match p.name.as_str() {
            "UID" if plain(p, &[]) => set_once(&mut self.uid, p.text_value()),
            "RECURRENCE-ID" if plain(p, TIME) => take_time(&mut self.recurrence_id, p),
            "DTSTAMP" if plain(p, TIME) => take_time(&mut self.dtstamp, p),
            "SUMMARY" if plain(p, &[]) => set_once(&mut self.summary, p.text_value()),
            "DESCRIPTION" if plain(p, &[]) => set_once(&mut self.description, p.text_value()),
            "LOCATION" if plain(p, &[]) => set_once(&mut self.location, p.text_value()),
            "DTSTART" if plain(p, TIME) => take_time(&mut self.start, p),
            "DTEND" if plain(p, TIME) => take_time(&mut self.end, p),
            "DUE" if plain(p, TIME) => take_time(&mut self.due, p),
            "COMPLETED" if plain(p, TIME) => take_time(&mut self.completed, p),
            "CREATED" if plain(p, TIME) => take_time(&mut self.created, p),
            "LAST-MODIFIED" if plain(p, TIME) => take_time(&mut self.last_modified, p),
            "DURATION" if plain(p, &[]) && self.duration.is_none() => {
                match parse_duration(&p.value) {
                    Some(s) => set_once(&mut self.duration, s),
                    None => false,
                }
            }
            "RRULE" if plain(p, &[]) && p.value.contains('=') => {
                self.rrules.push(p.value.trim().to_string());
                true
            }
            "EXDATE" if plain(p, TIME) => match CalTime::from_property(p) {
                Some(v) => {
                    self.exdates.extend(v);
                    true
                }
                None => false,
            },
            "STATUS" if plain(p, &[]) => {
                set_once(&mut self.status, p.value.trim().to_ascii_uppercase())
            }
            "CLASS" if plain(p, &[]) => {
                set_once(&mut self.class, p.value.trim().to_ascii_uppercase())
            }
            "PRIORITY" if plain(p, &[]) && self.priority.is_none() => {
                match p.value.trim().parse::<u8>() {
                    Ok(n) if n <= 9 => set_once(&mut self.priority, n),
                    _ => false,
                }
            }
            "PERCENT-COMPLETE" if plain(p, &[]) && self.percent_complete.is_none() => {
                match p.value.trim().parse::<u8>() {
                    Ok(n) if n <= 100 => set_once(&mut self.percent_complete, n),
                    _ => false,
                }
            }
            "SEQUENCE" if plain(p, &[]) && self.sequence.is_none() => {
                match p.value.trim().parse() {
                    Ok(n) => set_once(&mut self.sequence, n),
                    Err(_) => false,
                }
            }
            "CATEGORIES" if plain(p, &[]) => {
                self.categories.extend(
                    split_escaped(&p.value, ',')
                        .into_iter()
                        .map(|s| unescape_text(s).trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
                true
            }
            _ => false,
        }
    }

    /// Every TZID this component refers to.
    pub fn tzids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |t: &str| {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        };
        let times = [&self.recurrence_id, &self.start, &self.end, &self.due];
        for t in times.into_iter().flatten().chain(self.exdates.iter()) {
            if let Some(z) = t.tzid() {
                add(z);
            }
        }
        for p in &self.extra {
            for z in p.param_values("TZID") {
                add(z);
            }
        }
        out
    }

    /// The component in the iCalendar 2.0 model, properties in a fixed order.
    pub fn to_component(&self, kind: CalendarKind) -> Component {
        let mut c = Component::new(kind.component());
        if let Some(u) = &self.uid {
            c.push_text("UID", u);
        }
        if let Some(r) = &self.recurrence_id {
            c.props.push(r.to_property("RECURRENCE-ID"));
        }
        if let Some(t) = &self.dtstamp {
            c.props.push(t.to_property("DTSTAMP"));
        }
        if let Some(s) = &self.summary {
            c.push_text("SUMMARY", s);
        }
        if let Some(s) = &self.description {
            c.push_text("DESCRIPTION", s);
        }
        if let Some(s) = &self.location {
            c.push_text("LOCATION", s);
        }
        for (name, t) in [
            ("DTSTART", &self.start),
            ("DTEND", &self.end),
            ("DUE", &self.due),
        ] {
            if let Some(t) = t {
                c.props.push(t.to_property(name));
            }
        }
        if let Some(d) = self.duration {
            c.push_raw("DURATION", &format_duration(d));
        }
        if let Some(t) = &self.completed {
            c.props.push(t.to_property("COMPLETED"));
        }
        for r in &self.rrules {
            c.push_raw("RRULE", r);
        }
        for x in &self.exdates {
            c.props.push(x.to_property("EXDATE"));
        }
        if let Some(s) = &self.status {
            c.push_raw("STATUS", s);
        }
        if let Some(n) = self.priority {
            c.push_raw("PRIORITY", &n.to_string());
        }
        if let Some(n) = self.percent_complete {
            c.push_raw("PERCENT-COMPLETE", &n.to_string());
        }
        if let Some(s) = &self.class {
            c.push_raw("CLASS", s);
        }
        if !self.categories.is_empty() {
            let list: Vec<String> = self.categories.iter().map(|s| escape_text(s)).collect();
            c.push_raw("CATEGORIES", &list.join(","));
        }
        if let Some(n) = self.sequence {
            c.push_raw("SEQUENCE", &n.to_string());
        }
        if let Some(t) = &self.created {
            c.props.push(t.to_property("CREATED"));
        }
        if let Some(t) = &self.last_modified {
            c.props.push(t.to_property("LAST-MODIFIED"));
        }
        c.props.extend(
            self.extra
                .iter()
                .filter(|p| !is_internal(&p.name))
                .map(|p| {
                    let mut p = p.clone();
                    p.params.retain(|q| !q.name.starts_with("X-EVOLUTION-"));
                    p
                }),
        );
        c.subs.extend(self.alarms.iter().map(Alarm::to_component));
        c.subs.extend(self.extra_components.iter().cloned());
        c
    }
}

impl CalendarItem {
    /// An item with just a master component.
    pub fn new(kind: CalendarKind, master: CalComponent) -> CalendarItem {
        CalendarItem {
            kind,
            master: Some(master),
            instances: Vec::new(),
            timezones: Vec::new(),
        }
    }

    /// The UID shared by the components.
    pub fn uid(&self) -> Option<&str> {
        self.master
            .iter()
            .chain(self.instances.iter())
            .find_map(|c| c.uid.as_deref())
    }

    /// The identity of the item for matching copies of it (restore): the UID for an
    /// item with a master (or without components), and [`instance_id`]`(uid, rid)` for
    /// an item that is only a detached instance — the first one, should it carry more.
    ///
    /// The `rid` here is the recurrence id as a UTC instant when it can be resolved (UTC,
    /// or zoned with the item's `VTIMEZONE`), so that the same instance matches whether
    /// it was written with `TZID=Europe/Berlin` (EDS, iCalendar 2.0) or in UTC (vCalendar
    /// 1.0, servers that convert); dates and floating times as written. It can therefore
    /// differ from a store's local id of the instance, which keeps the store's own form.
    pub fn identity(&self) -> Option<String> {
        let uid = self.uid()?;
        if self.master.is_some() {
            return Some(uid.to_string());
        }
        let Some(rid) = self
            .instances
            .first()
            .and_then(|i| i.recurrence_id.as_ref())
        else {
            return Some(uid.to_string());
        };
        Some(instance_id(uid, Some(&self.instant_text(rid))))
    }

    /// `t` as a UTC instant (`…Z`) when it is UTC or zoned with a zone the item carries;
    /// otherwise as written.
    fn instant_text(&self, t: &CalTime) -> String {
        match t {
            CalTime::Zoned { tzid, time } => match self
                .timezone(tzid)
                .and_then(|z| super::tz::to_utc(z, *time))
            {
                Some(utc) => CalTime::Utc(utc).value_text(),
                None => t.value_text(),
            },
            other => other.value_text(),
        }
    }

    /// The item split into one item per component, as stores and servers that keep one
    /// component per item (evolution-data-server, SyncEvolution) hold them: the master,
    /// then each detached instance, each with only the `VTIMEZONE`s it refers to. An item
    /// of one component is returned as it is.
    pub fn split(self) -> Vec<CalendarItem> {
        if self.components().count() <= 1 {
            return vec![self];
        }
        let CalendarItem {
            kind,
            master,
            instances,
            timezones,
        } = self;
        let mut out = Vec::with_capacity(instances.len() + 1);
        if let Some(m) = master {
            let mut item = CalendarItem::new(kind, m);
            item.set_timezones(timezones.clone());
            out.push(item);
        }
        for i in instances {
            let mut item = CalendarItem {
                kind,
                master: None,
                instances: vec![i],
                timezones: Vec::new(),
            };
            item.set_timezones(timezones.clone());
            out.push(item);
        }
        out
    }

    /// Every component, master first.
    pub fn components(&self) -> impl Iterator<Item = &CalComponent> {
        self.master.iter().chain(self.instances.iter())
    }

    /// Every TZID the components refer to, sorted.
    pub fn tzids(&self) -> Vec<String> {
        let mut out: Vec<String> = self.components().flat_map(CalComponent::tzids).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The `VTIMEZONE` for `tzid`, if the item carries it.
    pub fn timezone(&self, tzid: &str) -> Option<&Component> {
        self.timezones
            .iter()
            .find(|z| timezone_id(z).as_deref() == Some(tzid))
    }

    /// Sets the UID of every component.
    pub fn set_uid(&mut self, uid: &str) {
        for c in self.master.iter_mut().chain(self.instances.iter_mut()) {
            c.uid = Some(uid.to_string());
        }
    }

    /// Builds an item from parsed components: `VTIMEZONE`s, and `VEVENT`/`VTODO`/`VJOURNAL`s
    /// of one kind and one UID (at most one without `RECURRENCE-ID`: the master). Unknown
    /// top-level components are an error. Time zones nobody refers to are dropped.
    pub fn from_components(comps: Vec<Component>) -> Result<CalendarItem, ItemError> {
        let mut kind: Option<CalendarKind> = None;
        let mut master: Option<CalComponent> = None;
        let mut instances: Vec<CalComponent> = Vec::new();
        let mut timezones: Vec<Component> = Vec::new();
        for c in comps {
            if c.name == "VTIMEZONE" {
                if timezone_id(&c).is_some_and(|id| !id.is_empty()) {
                    timezones.push(c);
                }
                continue;
            }
            let Some(k) = CalendarKind::from_component(&c.name) else {
                return Err(ItemError::Malformed(format!(
                    "unsupported component {}",
                    c.name
                )));
            };
            if kind.is_some_and(|known| known != k) {
                return Err(ItemError::Malformed(
                    "components of different kinds in one item".into(),
                ));
            }
            kind = Some(k);
            let comp = CalComponent::from_component(c);
            if comp.recurrence_id.is_some() {
                instances.push(comp);
            } else if master.is_none() {
                master = Some(comp);
            } else {
                return Err(ItemError::Malformed(
                    "more than one object in one item".into(),
                ));
            }
        }
        let Some(kind) = kind else {
            return Err(ItemError::Malformed("no VEVENT, VTODO or VJOURNAL".into()));
        };
        let mut item = CalendarItem {
            kind,
            master,
            instances,
            timezones: Vec::new(),
        };
        let uid = item.uid().map(str::to_string);
        if item.components().any(|c| c.uid.is_some() && c.uid != uid) {
            return Err(ItemError::Malformed(
                "components with different UIDs in one item".into(),
            ));
        }
        if uid.is_none() && item.components().count() > 1 {
            return Err(ItemError::Malformed(
                "several components without UID".into(),
            ));
        }
        item.instances
            .sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
        item.instances
            .dedup_by(|a, b| a.recurrence_id == b.recurrence_id);
        item.set_timezones(timezones);
        Ok(item)
    }

    /// Keeps, from `zones`, one `VTIMEZONE` per TZID the item refers to, sorted by TZID.
    pub fn set_timezones(&mut self, zones: Vec<Component>) {
        let wanted = self.tzids();
        let mut kept: Vec<Component> = Vec::new();
        for z in zones {
            let Some(id) = timezone_id(&z) else { continue };
            if wanted.contains(&id)
                && !kept
                    .iter()
                    .any(|k| timezone_id(k).as_deref() == Some(id.as_str()))
            {
                kept.push(z);
            }
        }
        kept.sort_by_key(timezone_id);
        self.timezones = kept;
    }

    /// The iCalendar 2.0 text: a `VCALENDAR` with `VERSION`, `PRODID`, the time zones,
    /// the master and the instances.
    pub fn to_ical(&self) -> Vec<u8> {
        let mut out = String::with_capacity(1024);
        out.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
        vcard_fold_prop(&mut out, "PRODID", PRODID);
        for z in &self.timezones {
            ical::write_20(&mut out, z);
        }
        for c in self.components() {
            ical::write_20(&mut out, &c.to_component(self.kind));
        }
        out.push_str("END:VCALENDAR\r\n");
        out.into_bytes()
    }

    /// Parses iCalendar 2.0 text: a `VCALENDAR` (or bare components, as EDS stores them).
    pub fn from_ical(parsed: ical::Parsed) -> Result<CalendarItem, ItemError> {
        let mut comps = Vec::new();
        for c in parsed.components {
            if c.name == "VCALENDAR" {
                comps.extend(c.subs);
            } else {
                comps.push(c);
            }
        }
        CalendarItem::from_components(comps)
    }
}

fn vcard_fold_prop(out: &mut String, name: &str, value: &str) {
    super::vcard::fold_30(out, &format!("{name}:{value}"));
}
