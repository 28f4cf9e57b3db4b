//! One EDS calendar, task list or memo list as a [`Source`].

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use zbus::proxy::CacheProperties;
use zbus::Connection;

use super::backend::{op_error, Backend, OpenFuture};
use super::proxies::{CalendarFactoryProxy, CalendarProxy};
use super::registry::{EdsSourceInfo, EdsSourceKind};
use crate::class::DataClass;
use crate::item::calendar::timezone_id;
use crate::item::{ical, CalendarItem, CalendarKind, Component, Item};
use crate::sources::{Source, SourceError, SourceItem, WriteOp, WriteResult};

/// The query that selects every object (`""` would select none).
const ALL: &str = "#t";
/// Objects per CreateObjects / RemoveObjects call.
const BATCH: usize = 200;

/// An EDS calendar (events, class calendar), task list (to-dos, class tasks) or memo
/// list (journals, class notes); id `eds:<source uid>`.
///
/// Like the address book it stays open as long as its connection is on the bus and
/// reopens itself after a factory restart.
pub struct CalendarSource {
    backend: Backend<CalendarProxy<'static>>,
    info: EdsSourceInfo,
    kind: CalendarKind,
    writable: bool,
    /// `VTIMEZONE`s fetched with GetTimezone in this job (`None`: EDS does not know it).
    zones: HashMap<String, Option<Component>>,
    /// TZIDs given to AddTimezone in this job.
    added_zones: HashSet<String>,
}

impl std::fmt::Debug for CalendarSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarSource")
            .field("kind", &self.kind)
            .field("backend", &self.backend)
            .field("path", &self.backend.proxy().inner().path().as_str())
            .finish()
    }
}

fn open_with(
    conn: Connection,
    factory: String,
    uid: String,
    kind: EdsSourceKind,
) -> OpenFuture<CalendarProxy<'static>> {
    Box::pin(async move {
        let f = CalendarFactoryProxy::builder(&conn)
            .destination(factory)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let (path, bus_name) = match kind {
            EdsSourceKind::TaskList => f.open_task_list(&uid).await?,
            EdsSourceKind::MemoList => f.open_memo_list(&uid).await?,
            _ => f.open_calendar(&uid).await?,
        };
        let proxy = CalendarProxy::builder(&conn)
            .destination(bus_name.clone())?
            .path(path)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        proxy.open().await?;
        Ok((bus_name, proxy))
    })
}

fn open_calendar(
    conn: Connection,
    factory: String,
    uid: String,
) -> OpenFuture<CalendarProxy<'static>> {
    open_with(conn, factory, uid, EdsSourceKind::Calendar)
}

fn open_task_list(
    conn: Connection,
    factory: String,
    uid: String,
) -> OpenFuture<CalendarProxy<'static>> {
    open_with(conn, factory, uid, EdsSourceKind::TaskList)
}

fn open_memo_list(
    conn: Connection,
    factory: String,
    uid: String,
) -> OpenFuture<CalendarProxy<'static>> {
    open_with(conn, factory, uid, EdsSourceKind::MemoList)
}

/// The UID of a component that failed to parse, by a plain line scan.
fn raw_uid(ics: &str) -> Option<String> {
    ics.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("UID")
            .then(|| value.trim().to_string())
    })
}

/// A string for an EDS s-expression (`"…"` with `\` and `"` escaped).
fn sexp_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The bare component text EDS takes.
fn component_text(c: &Component) -> String {
    let mut out = String::new();
    ical::write_20(&mut out, c);
    out
}

/// Groups the strings of GetObjectList (master and detached instances separately) into
/// one entry per UID: parsed components, or the first parse error. Sorted by UID.
pub(crate) fn group_by_uid(
    objects: Vec<String>,
) -> BTreeMap<String, Result<Vec<Component>, String>> {
    let mut groups: BTreeMap<String, Result<Vec<Component>, String>> = BTreeMap::new();
    for ics in objects {
        let parsed = ical::parse(ics.as_bytes())
            .map_err(|e| e.to_string())
            .map(|p| {
                let comps: Vec<Component> = p
                    .components
                    .into_iter()
                    .flat_map(|c| {
                        if c.name == "VCALENDAR" {
                            c.subs
                        } else {
                            vec![c]
                        }
                    })
                    .collect();
                let uid = comps
                    .iter()
                    .find_map(|c| c.text("UID"))
                    .map(|u| u.trim().to_string());
                (uid, comps)
            });
        let (uid, result) = match parsed {
            Ok((Some(uid), comps)) => (uid, Ok(comps)),
            Ok((None, _)) => (String::new(), Err("object without UID".to_string())),
            Err(e) => (raw_uid(&ics).unwrap_or_default(), Err(e)),
        };
        match (groups.entry(uid).or_insert_with(|| Ok(Vec::new())), result) {
            (Ok(list), Ok(comps)) => list.extend(comps),
            (slot @ Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }
    groups
}

impl CalendarSource {
    /// `Open<Kind>(uid)` on the calendar factory `factory`, then `Open()`.
    pub(crate) async fn open(
        conn: Connection,
        factory: String,
        info: EdsSourceInfo,
    ) -> Result<CalendarSource, SourceError> {
        let (kind, open_fn): (CalendarKind, super::backend::OpenFn<CalendarProxy<'static>>) =
            match info.kind {
                EdsSourceKind::Calendar => (CalendarKind::Event, open_calendar),
                EdsSourceKind::TaskList => (CalendarKind::Task, open_task_list),
                EdsSourceKind::MemoList => (CalendarKind::Journal, open_memo_list),
                EdsSourceKind::AddressBook => {
                    return Err(SourceError::Store {
                        store: format!("eds:{}", info.uid),
                        detail: "an address book is not a calendar".into(),
                    })
                }
            };
        let mut backend =
            Backend::open(conn, factory, info.uid.clone(), info.kind.noun(), open_fn).await?;
        let writable = backend
            .call("reading Writable", |p| async move { p.writable().await })
            .await?;
        Ok(CalendarSource {
            backend,
            info,
            kind,
            writable,
            zones: HashMap::new(),
            added_zones: HashSet::new(),
        })
    }

    /// The source this store was opened from.
    pub fn info(&self) -> &EdsSourceInfo {
        &self.info
    }

    /// The kind of items the store holds.
    pub fn kind(&self) -> CalendarKind {
        self.kind
    }

    /// The D-Bus proxy of the opened store. Changes after a reopen.
    pub fn proxy(&self) -> &CalendarProxy<'static> {
        self.backend.proxy()
    }

    /// The `VTIMEZONE` of `tzid` from EDS (cached for the life of this source, i.e. one
    /// job). Olson TZIDs resolve even when never added (libical's built-in zones).
    async fn timezone(&mut self, tzid: &str) -> Result<Option<Component>, SourceError> {
        if let Some(z) = self.zones.get(tzid) {
            return Ok(z.clone());
        }
        let id = tzid.to_string();
        let zone = match self
            .backend
            .call("reading a time zone", |p| {
                let id = id.clone();
                async move { p.get_timezone(&id).await }
            })
            .await
        {
            Ok(text) => ical::parse(text.as_bytes())
                .ok()
                .and_then(|p| p.components.into_iter().find(|c| c.name == "VTIMEZONE")),
            Err(SourceError::Store { detail, .. }) => {
                tracing::debug!(store = %self.backend.id(), "time zone {tzid}: {detail}");
                None
            }
            Err(e) => return Err(e),
        };
        self.zones.insert(tzid.to_string(), zone.clone());
        Ok(zone)
    }

    /// Builds one item from the components of one UID.
    async fn convert(
        &mut self,
        comps: Vec<Component>,
    ) -> Result<Result<Item, String>, SourceError> {
        let mut item = match CalendarItem::from_components(comps) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if item.kind != self.kind {
            return Ok(Err(format!(
                "a {:?} in a {}",
                item.kind,
                self.info.kind.noun()
            )));
        }
        let mut zones = Vec::new();
        for tzid in item.tzids() {
            if let Some(z) = self.timezone(&tzid).await? {
                zones.push(z);
            }
        }
        item.set_timezones(zones);
        Ok(Ok(Item::Calendar(item)))
    }

    async fn call_strings(
        &mut self,
        what: &str,
        method: Method,
        args: Vec<String>,
    ) -> Result<Result<Vec<String>, String>, SourceError> {
        let res = self
            .backend
            .call(what, |p| {
                let args = args.clone();
                async move {
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    match method {
                        Method::Create => p.create_objects(&refs, 0).await,
                        Method::Modify(mod_type) => p
                            .modify_objects(&refs, mod_type, 0)
                            .await
                            .map(|()| Vec::new()),
                        Method::Remove(mod_type) => {
                            // args: uid, rid, uid, rid, …
                            let pairs: Vec<(&str, &str)> = refs
                                .chunks(2)
                                .map(|c| (c[0], c.get(1).copied().unwrap_or("")))
                                .collect();
                            p.remove_objects(&pairs, mod_type, 0)
                                .await
                                .map(|()| Vec::new())
                        }
                        Method::AddTimezone => p
                            .add_timezone(refs.first().copied().unwrap_or_default())
                            .await
                            .map(|()| Vec::new()),
                        Method::List => {
                            p.get_object_list(refs.first().copied().unwrap_or(ALL))
                                .await
                        }
                    }
                }
            })
            .await;
        match res {
            Ok(v) => Ok(Ok(v)),
            Err(e) => op_error(e).map(Err),
        }
    }

    /// AddTimezone for every zone of `item` not yet added in this job.
    async fn add_zones(&mut self, item: &CalendarItem) -> Result<Result<(), String>, SourceError> {
        for z in &item.timezones {
            let Some(id) = timezone_id(z) else { continue };
            if self.added_zones.contains(&id) {
                continue;
            }
            if let Err(e) = self
                .call_strings(
                    "adding a time zone",
                    Method::AddTimezone,
                    vec![component_text(z)],
                )
                .await?
            {
                return Ok(Err(format!("cannot add the time zone {id}: {e}")));
            }
            self.added_zones.insert(id);
        }
        Ok(Ok(()))
    }

    /// Writes the detached instances of `item` (UID already set) with `ModifyObjects(…,
    /// "this")`, after removing (`only-this`, no EXDATE) the stored instances the item
    /// no longer has when `replace`.
    async fn write_instances(
        &mut self,
        item: &CalendarItem,
        replace: bool,
    ) -> Result<Result<(), String>, SourceError> {
        let uid = item.uid().unwrap_or_default().to_string();
        if replace {
            let stored = self
                .call_strings(
                    "reading an object",
                    Method::List,
                    vec![format!("(uid? {})", sexp_string(&uid))],
                )
                .await?;
            let stored = match stored {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let keep: Vec<String> = item
                .instances
                .iter()
                .filter_map(|i| i.recurrence_id.as_ref().map(|r| r.rid_text()))
                .collect();
            let mut remove = Vec::new();
            for comps in group_by_uid(stored).into_values().flatten() {
                for c in comps {
                    let Some(rid) = c.prop("RECURRENCE-ID").map(|p| p.value.trim().to_string())
                    else {
                        continue;
                    };
                    if !keep.contains(&rid) {
                        remove.push(uid.clone());
                        remove.push(rid);
                    }
                }
            }
            if !remove.is_empty() {
                if let Err(e) = self
                    .call_strings(
                        "removing detached instances",
                        Method::Remove("only-this"),
                        remove,
                    )
                    .await?
                {
                    return Ok(Err(format!("removing old detached instances: {e}")));
                }
            }
        }
        let texts: Vec<String> = item
            .instances
            .iter()
            .map(|i| component_text(&i.to_component(item.kind)))
            .collect();
        if texts.is_empty() {
            return Ok(Ok(()));
        }
        Ok(self
            .call_strings("writing detached instances", Method::Modify("this"), texts)
            .await?
            .map(|_| ())
            .map_err(|e| format!("the detached instances were not written: {e}")))
    }

    /// Adds items: the masters in batches through CreateObjects (one by one after a
    /// failed batch), then each item's detached instances.
    async fn add_items(
        &mut self,
        items: Vec<CalendarItem>,
    ) -> Result<Vec<WriteResult>, SourceError> {
        let mut results: Vec<Option<WriteResult>> = vec![None; items.len()];
        // Zones first; an item whose zone cannot be added fails.
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = self.add_zones(item).await? {
                results[i] = Some(WriteResult {
                    local_id: None,
                    error: Some(e),
                });
            }
        }
        // Masters (or, without a master, the first instance) through CreateObjects.
        let firsts: Vec<(usize, String)> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .filter_map(|(i, item)| {
                item.components()
                    .next()
                    .map(|c| (i, component_text(&c.to_component(item.kind))))
            })
            .collect();
        // Batches of at most BATCH objects, a UID at most once per batch (EDS does not
        // reject a UID repeated within one CreateObjects call).
        let mut chunks: Vec<Vec<(usize, String)>> = Vec::new();
        let mut uids_in_chunk: HashSet<&str> = HashSet::new();
        for (i, text) in firsts {
            let uid = items[i].uid().unwrap_or_default();
            let full = chunks.last().is_none_or(|c| c.len() >= BATCH)
                || (!uid.is_empty() && uids_in_chunk.contains(uid));
            if full {
                chunks.push(Vec::new());
                uids_in_chunk.clear();
            }
            uids_in_chunk.insert(uid);
            if let Some(c) = chunks.last_mut() {
                c.push((i, text));
            }
        }
        let mut created: HashMap<usize, String> = HashMap::new();
        for chunk in &chunks {
            let texts: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
            match self
                .call_strings("creating objects", Method::Create, texts)
                .await?
            {
                Ok(uids) if uids.len() == chunk.len() => {
                    for ((i, _), uid) in chunk.iter().zip(uids) {
                        created.insert(*i, uid);
                    }
                }
                batch_result => {
                    if chunk.len() > 1 {
                        tracing::info!(store = %self.backend.id(), "a batch of {} failed, writing one by one", chunk.len());
                    }
                    for (i, text) in chunk {
                        let single = if chunk.len() == 1 {
                            batch_result.clone()
                        } else {
                            self.call_strings(
                                "creating an object",
                                Method::Create,
                                vec![text.clone()],
                            )
                            .await?
                        };
                        match single {
                            Ok(uids) if uids.len() == 1 => {
                                created.insert(*i, uids[0].clone());
                            }
                            Ok(uids) => {
                                results[*i] = Some(WriteResult {
                                    local_id: None,
                                    error: Some(format!(
                                        "EDS returned {} UIDs for one object",
                                        uids.len()
                                    )),
                                })
                            }
                            Err(e) => {
                                results[*i] = Some(WriteResult {
                                    local_id: items[*i].uid().map(str::to_string),
                                    error: Some(e),
                                })
                            }
                        }
                    }
                }
            }
        }
        for (i, mut item) in items.into_iter().enumerate() {
            let Some(uid) = created.remove(&i) else {
                continue;
            };
            item.set_uid(&uid);
            let rest = CalendarItem {
                instances: if item.master.is_some() {
                    item.instances.clone()
                } else {
                    item.instances.iter().skip(1).cloned().collect()
                },
                ..item.clone()
            };
            let error = self.write_instances(&rest, false).await?.err();
            results[i] = Some(WriteResult {
                local_id: Some(uid),
                error,
            });
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(WriteResult {
                    local_id: None,
                    error: Some("no result".into()),
                })
            })
            .collect())
    }

    /// Replaces one item: ModifyObjects(master, "all"), then its detached instances.
    async fn replace_item(
        &mut self,
        local_id: &str,
        mut item: CalendarItem,
    ) -> Result<WriteResult, SourceError> {
        item.set_uid(local_id);
        let fail = |e: String| WriteResult {
            local_id: Some(local_id.to_string()),
            error: Some(e),
        };
        if let Err(e) = self.add_zones(&item).await? {
            return Ok(fail(e));
        }
        if let Some(m) = &item.master {
            let text = component_text(&m.to_component(item.kind));
            if let Err(e) = self
                .call_strings("modifying an object", Method::Modify("all"), vec![text])
                .await?
            {
                return Ok(fail(e));
            }
        }
        Ok(match self.write_instances(&item, true).await? {
            Ok(()) => WriteResult {
                local_id: Some(local_id.to_string()),
                error: None,
            },
            Err(e) => fail(e),
        })
    }

    /// Removes whole objects (master and instances), in batches; one by one after a
    /// failed batch.
    async fn remove_items(&mut self, uids: Vec<String>) -> Result<Vec<WriteResult>, SourceError> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(BATCH) {
            let args: Vec<String> = chunk
                .iter()
                .flat_map(|u| [u.clone(), String::new()])
                .collect();
            match self
                .call_strings("removing objects", Method::Remove("all"), args)
                .await?
            {
                Ok(_) => out.extend(chunk.iter().map(|u| WriteResult {
                    local_id: Some(u.clone()),
                    error: None,
                })),
                Err(batch_error) => {
                    for u in chunk {
                        let res = if chunk.len() == 1 {
                            Err(batch_error.clone())
                        } else {
                            self.call_strings(
                                "removing an object",
                                Method::Remove("all"),
                                vec![u.clone(), String::new()],
                            )
                            .await?
                        };
                        out.push(WriteResult {
                            local_id: Some(u.clone()),
                            error: res.err(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Method {
    Create,
    Modify(&'static str),
    Remove(&'static str),
    AddTimezone,
    List,
}

#[async_trait]
impl Source for CalendarSource {
    fn class(&self) -> DataClass {
        self.info.kind.class()
    }

    fn id(&self) -> &str {
        self.backend.id()
    }

    fn display_name(&self) -> &str {
        &self.info.display_name
    }

    async fn revision(&mut self) -> Result<String, SourceError> {
        self.backend
            .call("reading Revision", |p| async move { p.revision().await })
            .await
    }

    /// `GetObjectList("#t")`: masters and detached instances as separate strings; grouped
    /// by UID into one item each, with the referenced `VTIMEZONE`s from `GetTimezone`.
    /// Measured (debug build, private bus, `measure_list_and_write_2000_events`): 2 000
    /// events (200 series with a moved occurrence) list in 0.30–0.45 s; writing them
    /// (restore) takes 3.1 s.
    async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError> {
        let objects = self
            .backend
            .call("listing objects", |p| async move {
                p.get_object_list(ALL).await
            })
            .await?;
        let mut items = Vec::new();
        for (uid, comps) in group_by_uid(objects) {
            let item = match comps {
                Ok(comps) if !uid.is_empty() => self.convert(comps).await?,
                Ok(_) => Err("object without UID".to_string()),
                Err(e) => Err(e),
            };
            items.push(SourceItem {
                local_id: uid,
                item,
            });
        }
        Ok(items)
    }

    fn writable(&self) -> bool {
        self.writable
    }

    /// Add → `AddTimezone` for the item's zones, `CreateObjects` of the master keeping its
    /// UID (batched; one by one after a failed batch), then `ModifyObjects(…, "this")` for
    /// its detached instances. Replace → `ModifyObjects(master, "all")`, stored detached
    /// instances the item no longer has are removed with `only-this` (no EXDATE), then
    /// the item's instances with `this`. Delete → `RemoveObjects((uid, ""), "all")`.
    /// Consecutive ops of one kind are written together; results keep the op order.
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, SourceError> {
        let mut results = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        let noun = match self.kind {
            CalendarKind::Event => "event",
            CalendarKind::Task => "task",
            CalendarKind::Journal => "memo",
        };
        let store_noun = self.info.kind.noun();
        let wrong = move |what: &str| format!("only {what}s can be written into a {store_noun}");
        while let Some(op) = ops.next() {
            match op {
                WriteOp::Add(first) => {
                    let mut run = vec![first];
                    while let Some(WriteOp::Add(next)) =
                        ops.next_if(|o| matches!(o, WriteOp::Add(_)))
                    {
                        run.push(next);
                    }
                    let mut slots = Vec::with_capacity(run.len());
                    let mut items = Vec::new();
                    for item in run {
                        match item {
                            Item::Calendar(c)
                                if c.kind == self.kind && c.components().next().is_some() =>
                            {
                                items.push(c);
                                slots.push(None);
                            }
                            other => slots.push(Some(WriteResult {
                                local_id: other.uid().map(str::to_string),
                                error: Some(wrong(noun)),
                            })),
                        }
                    }
                    let mut done = self.add_items(items).await?.into_iter();
                    for slot in slots {
                        results.push(slot.or_else(|| done.next()).unwrap_or(WriteResult {
                            local_id: None,
                            error: Some("no result".into()),
                        }));
                    }
                }
                WriteOp::Replace { local_id, item } => match item {
                    Item::Calendar(c) if c.kind == self.kind && c.components().next().is_some() => {
                        results.push(self.replace_item(&local_id, c).await?)
                    }
                    _ => results.push(WriteResult {
                        local_id: Some(local_id),
                        error: Some(wrong(noun)),
                    }),
                },
                WriteOp::Delete { local_id } => {
                    let mut uids = vec![local_id];
                    while let Some(WriteOp::Delete { local_id }) =
                        ops.next_if(|o| matches!(o, WriteOp::Delete { .. }))
                    {
                        uids.push(local_id);
                    }
                    results.extend(self.remove_items(uids).await?);
                }
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_masters_and_instances() {
        let objects = vec![
            "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240101T100000Z\r\nEND:VEVENT\r\n".to_string(),
            "BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20240108T100000Z\r\nDTSTART:20240108T110000Z\r\nEND:VEVENT\r\n".to_string(),
            "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n".to_string(),
            "BEGIN:VEVENT\r\nUID:c\r\nno colon\r\nEND:VEVENT\r\n".to_string(),
            "BEGIN:VEVENT\r\nDTSTART:20240101T100000Z\r\nEND:VEVENT\r\n".to_string(),
        ];
        let g = group_by_uid(objects);
        let keys: Vec<&str> = g.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["", "a", "b", "c"]);
        assert_eq!(g["a"].as_ref().unwrap().len(), 2);
        assert!(g["c"].is_err());
        assert!(g[""].is_err());
        let item = CalendarItem::from_components(g["a"].clone().unwrap()).unwrap();
        assert!(item.master.is_some());
        assert_eq!(item.instances.len(), 1);
        assert_eq!(sexp_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
