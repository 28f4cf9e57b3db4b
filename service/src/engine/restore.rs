//! Restore: bring the server's items back onto the phone.
//!
//! One SyncML session asks for refresh-from-server (205) for every class; the server sends all
//! its items. Each is parsed as it arrives and given a LUID (the server gets the Map), but
//! nothing is written to the phone until the session ended well and every item of the class
//! was received: then, per class,
//! - `merge` (default): items the phone lacks are added (to the store they came from, else the
//!   default store of their kind); items the phone has (same UID) are replaced only if the
//!   server's copy is newer; no phone item is deleted;
//! - `replace`: the phone's stores become the server's copy (phone items the server lacks are
//!   deleted).
//!
//! Afterwards the stores are read again and the tracking state is rebuilt from what they hold
//! now, so the next backup sends nothing but what differs from the server (items the phone kept
//! because they were newer, and in `merge` the phone's own extra items).

use std::collections::{BTreeMap, HashMap};

use syncml::session::{ClientSession, Event, ItemResult, ServerItemKind, SessionConfig, StoreConfig};

use super::report::{ClassReport, ErrorKind, JobReport};
use super::tracker::{self};
use super::{Engine, EngineError, JobContext};
use crate::class::DataClass;
use crate::item::{Item, WireFormat};
use crate::profile::store::now;
use crate::profile::{Account, CommitItem, SessionCommit};
use crate::sources::{self, Source, WriteOp};

/// How a restore treats what the phone already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestoreMode {
    #[default]
    Merge,
    Replace,
}

impl RestoreMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreMode::Merge => "merge",
            RestoreMode::Replace => "replace",
        }
    }
}

impl std::str::FromStr for RestoreMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "merge" => Ok(RestoreMode::Merge),
            "replace" => Ok(RestoreMode::Replace),
            _ => Err(format!("unknown restore mode '{s}' (known: merge, replace)")),
        }
    }
}

/// The format items of a class are rendered in for change tracking (independent of the format
/// negotiated with a server, so a format change does not look like a change of every item).
pub(super) fn canonical_format(class: DataClass) -> WireFormat {
    crate::item::formats_for(class).first().copied().unwrap_or(WireFormat::VCard30)
}

/// The wire format of an item the server sent, from its content type.
fn format_of(class: DataClass, content_type: Option<&str>) -> WireFormat {
    let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    for &f in crate::item::formats_for(class) {
        if ct.as_deref() == Some(f.mime()) {
            return f;
        }
    }
    canonical_format(class)
}

/// When the item was last changed, as digits only (comparable across the formats servers use).
fn modified(item: &Item) -> Option<String> {
    let raw = match item {
        Item::Contact(c) => c.rev.clone(),
        Item::Calendar(c) => c.components().find_map(|m| m.last_modified.as_ref()).map(|t| t.value_text()),
        // A message does not change once written.
        Item::Sms(_) => None,
    }?;
    let digits: String = raw.chars().filter(char::is_ascii_digit).take(14).collect();
    (digits.len() >= 8).then_some(digits)
}

/// The identity restore matches items by (the UID; for a moved occurrence of a series
/// UID + RECURRENCE-ID).
fn identity(item: &Item) -> Option<String> {
    item.identity()
}

/// Who an item is about, for matching when a server dropped the UID (restore, and a backup
/// recovering from a broken session): a contact by its name,
/// e-mail addresses and phone numbers (servers rewrite the rest: empty properties, parameter
/// order, REV); other items by their content in the class's canonical format (a memo sent as
/// plain text is its summary and text).
pub(super) fn fingerprint(item: &Item, class: DataClass) -> Vec<u8> {
    match item {
        Item::Contact(c) => {
            let mut emails: Vec<String> = c.emails.iter().map(|e| e.value.trim().to_lowercase()).collect();
            emails.sort();
            let mut tels: Vec<String> =
                c.tels.iter().map(|t| t.value.chars().filter(|ch| ch.is_ascii_digit() || *ch == '+').collect()).collect();
            tels.sort();
            format!("{}\u{1f}{}\u{1f}{}", c.formatted_name.as_deref().unwrap_or("").trim(), emails.join(","), tels.join(","))
                .into_bytes()
        }
        other => other.to_wire(canonical_format(class)),
    }
}

/// `item` carrying the identity of the phone item it replaces (servers may drop UIDs).
fn with_identity_of(item: Item, phone: &Item) -> Item {
    match (item, phone) {
        (Item::Contact(mut c), Item::Contact(p)) => {
            c.uid = p.uid.clone();
            Item::Contact(c)
        }
        (Item::Calendar(mut c), Item::Calendar(p)) => {
            if c.uid().is_none() {
                if let Some(u) = p.uid() {
                    c.set_uid(u);
                }
            }
            Item::Calendar(c)
        }
        (other, _) => other,
    }
}

struct Received {
    luid: u64,
    server_id: String,
    /// Our LUID for the item, if the server named one (Target LocURI).
    server_luid: Option<String>,
    item: Item,
}

/// A phone item, where it lives.
struct PhoneItem {
    source: usize,
    local_id: String,
    item: Item,
}

struct ClassRestore {
    class: DataClass,
    remote_uri: String,
    sources: Vec<Box<dyn Source>>,
    received: Vec<Received>,
    next_luid: u64,
    report: ClassReport,
    has_state: bool,
}

impl Engine {
    pub(super) async fn restore(
        &self,
        account: &Account,
        classes: &[DataClass],
        mode: RestoreMode,
        ctx: &JobContext,
        report: &mut JobReport,
    ) -> Result<(), EngineError> {
        let name = account.name();
        let password = self.password_for(account).await?;
        let phone_bus = zbus::Connection::session()
            .await
            .map_err(|e| EngineError::Source(format!("cannot connect to the session bus: {e}")))?;
        let mut runs = Vec::new();
        for &class in classes {
            let settings = account.class(class);
            let sctx = sources::SourceContext { conn: &phone_bus, store: &self.store, account, state_dir: self.options.state_dir.as_deref() };
            match sources::open_sources(class, &sctx).await {
                Ok(srcs) if srcs.iter().any(|s| s.writable()) => {
                    let state = self.with_store(|s| s.class_state(&name, class))?;
                    let has_state = state.is_some_and(|st| st.is_for(&account.server_url, &settings.remote_uri));
                    runs.push(ClassRestore {
                        class,
                        remote_uri: settings.remote_uri.clone(),
                        sources: srcs.into_iter().filter(|s| s.writable()).collect(),
                        received: Vec::new(),
                        next_luid: self.with_store(|s| s.next_luid(&name, class))?,
                        report: ClassReport::new(&format!("refresh-from-server ({})", mode.as_str())),
                        has_state,
                    });
                }
                Ok(_) => {
                    let mut cr = ClassReport::new("none");
                    cr.fail(ErrorKind::SourceUnavailable, format!("no store on the phone can take {class}"));
                    report.classes.insert(class.to_string(), cr);
                }
                Err(e) => {
                    let mut cr = ClassReport::new("none");
                    match super::source_error(e) {
                        EngineError::Unavailable(why) if super::skippable(class) => cr.skip(why),
                        e => cr.fail(ErrorKind::SourceUnavailable, e.to_string()),
                    }
                    report.classes.insert(class.to_string(), cr);
                }
            }
        }
        if runs.is_empty() {
            return Ok(());
        }
        // Tracked LUIDs stay reserved: new ones continue after them.
        for run in runs.iter_mut() {
            let max = self.with_store(|s| s.tracked_items(&name, run.class))?.iter().map(|t| t.luid).max().unwrap_or(0);
            run.next_luid = run.next_luid.max(max + 1);
        }

        let device_id = self.with_store(|s| s.device_id())?;
        let anchor = now().to_string();
        let stores = runs
            .iter()
            .map(|r| StoreConfig {
                local_uri: super::local_uri(r.class),
                remote_uri: r.remote_uri.clone(),
                mode: syncml::session::SyncMode::RefreshFromServer,
                last_anchor: if r.has_state {
                    self.with_store(|s| s.class_state(&name, r.class)).ok().flatten().and_then(|s| s.last_anchor)
                } else {
                    None
                },
                next_anchor: anchor.clone(),
                content_type: canonical_format(r.class).mime().to_string(),
                content_version: canonical_format(r.class).version().to_string(),
            })
            .collect();
        // The server picks the formats it sends from our DevInf: always send it, and take theirs.
        let exchange = self.devinf_exchange(
            account,
            super::devinf::client_devinf(
                &device_id,
                &runs.iter().map(|r| (r.class, canonical_format(r.class))).collect::<Vec<_>>(),
            ),
            &[],
            false,
        )?;
        let cfg = SessionConfig {
            server_url: account.server_url.clone(),
            device_id: device_id.clone(),
            session_id: self.next_session_id().to_string(),
            credentials: self.credentials(account, password)?,
            max_msg_size: self.options.max_msg_size,
            max_obj_size: self.options.max_obj_size,
            devinf: exchange.ours.clone(),
            send_devinf: exchange.send_ours,
            known_server_devinf: exchange.known_theirs.clone(),
            stores,
        };

        let transport = self.transport_for(account);
        let deadline = tokio::time::Instant::now() + self.options.session_deadline;
        let mut session = ClientSession::with_encoding(cfg, self.encoding_for(&name)?);
        let outcome = loop {
            if ctx.is_cancelled() {
                break Err(EngineError::Cancelled);
            }
            match session.poll() {
                Event::Send { url, body, content_type } => match self.post(&transport, deadline, url, content_type, body).await {
                    Ok(resp) => session.receive(resp.status, resp.content_type.as_deref(), &resp.body),
                    Err(e) => break Err(e),
                },
                Event::NeedChanges { store, .. } => session.provide_changes(&store, Vec::new()),
                Event::NeedMoreChanges { store } => session.more_changes(&store, Vec::new(), true),
                Event::ServerItems { store, items } => {
                    let Some(run) = runs.iter_mut().find(|r| super::local_uri(r.class) == store) else {
                        let results = items.iter().map(|i| ItemResult { handle: i.handle, status: 404, luid: None }).collect();
                        session.server_item_results(&store, results);
                        continue;
                    };
                    let mut results = Vec::with_capacity(items.len());
                    for it in items {
                        match it.kind {
                            ServerItemKind::Add | ServerItemKind::Replace => {
                                let format = format_of(run.class, it.content_type.as_deref());
                                match Item::from_wire(&it.data, format) {
                                    Ok(item) => {
                                        let luid = run.next_luid;
                                        run.next_luid += 1;
                                        run.received.push(Received {
                                            luid,
                                            server_id: it.server_id.clone(),
                                            server_luid: it.local_id.clone(),
                                            item,
                                        });
                                        let status = if it.kind == ServerItemKind::Add { 201 } else { 200 };
                                        results.push(ItemResult { handle: it.handle, status, luid: Some(luid.to_string()) });
                                    }
                                    Err(e) => {
                                        run.report.failed += 1;
                                        run.report.errors.push(format!("server item {} cannot be read: {e}", it.server_id));
                                        results.push(ItemResult { handle: it.handle, status: 415, luid: None });
                                    }
                                }
                            }
                            // In a refresh from the server there is nothing to delete on our side.
                            ServerItemKind::Delete => results.push(ItemResult { handle: it.handle, status: 211, luid: None }),
                        }
                    }
                    ctx.observer.progress(run.class, run.received.len() as u32, 0);
                    session.server_item_results(&store, results);
                }
                Event::Finished(r) => break Ok(r),
                Event::Failed(e) => break Err(EngineError::Session(e)),
            }
        };
        let sr = match outcome {
            Ok(sr) => sr,
            Err(e) => {
                tracing::warn!(job = ctx.id, error = %e, "restore session failed; nothing was written to the phone");
                for mut run in runs {
                    run.report.fail(e.kind(), e.to_string());
                    report.classes.insert(run.class.to_string(), run.report);
                }
                return Ok(());
            }
        };
        report.messages_sent += sr.messages_sent;
        report.bytes_sent += sr.bytes_sent;
        report.bytes_received += sr.bytes_received;
        self.remember_nonce(&name, &sr)?;
        self.remember_encoding(&name, &sr)?;
        self.remember_devinf(account, &exchange, &sr)?;
        for mut run in runs {
            match sr.stores.iter().find(|s| s.local_uri == super::local_uri(run.class)) {
                Some(st) if st.ok() => {
                    if let Err(e) = self.apply_restore(&name, account, &mut run, mode, &st.next_anchor, ctx).await {
                        run.report.fail(e.kind(), e.to_string());
                    }
                }
                Some(st) => run.report.fail(ErrorKind::ServerError, st.error.clone().unwrap_or_default()),
                None => run.report.fail(ErrorKind::ServerError, "the server did not take part with this database".into()),
            }
            report.classes.insert(run.class.to_string(), run.report);
        }
        Ok(())
    }

    /// Write what arrived into the phone's stores, then rebuild the tracking state.
    async fn apply_restore(
        &self,
        name: &str,
        account: &Account,
        run: &mut ClassRestore,
        mode: RestoreMode,
        next_anchor: &str,
        ctx: &JobContext,
    ) -> Result<(), EngineError> {
        let class = run.class;
        // What the phone holds now.
        let mut phone: Vec<PhoneItem> = Vec::new();
        for (si, src) in run.sources.iter_mut().enumerate() {
            for it in src.list().await.map_err(super::source_error)? {
                if let Ok(item) = it.item {
                    phone.push(PhoneItem { source: si, local_id: it.local_id, item });
                }
            }
        }
        let by_identity: HashMap<String, usize> =
            phone.iter().enumerate().filter_map(|(i, p)| identity(&p.item).map(|u| (u, i))).collect();
        let by_local: HashMap<(usize, &str), usize> =
            phone.iter().enumerate().map(|(i, p)| ((p.source, p.local_id.as_str()), i)).collect();
        let mut by_content: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, p) in phone.iter().enumerate() {
            by_content.entry(fingerprint(&p.item, class)).or_default().push(i);
        }
        // What earlier backups sent: LUID → where the item lived (the server may name our LUID).
        let tracked = self.with_store(|s| s.tracked_items(name, class))?;
        let source_ids: Vec<String> = run.sources.iter().map(|s| s.id().to_string()).collect();
        let source_index = |id: &str| source_ids.iter().position(|s| s == id);
        let by_luid: HashMap<u64, (usize, String)> = tracked
            .iter()
            .filter_map(|t| source_index(&t.source_id).map(|si| (t.luid, (si, t.local_id.clone()))))
            .collect();
        // Keyed by UID: a moved occurrence goes to the calendar its series came from.
        let origin: HashMap<&str, usize> = tracked
            .iter()
            .filter_map(|t| source_index(&t.source_id).map(|si| (crate::item::split_instance_id(&t.local_id).0, si)))
            .collect();
        // What each phone item was when last backed up (unchanged since = the server's copy is ours).
        let backed_up: HashMap<(usize, &str), &[u8]> = tracked
            .iter()
            .filter_map(|t| source_index(&t.source_id).map(|si| ((si, t.local_id.as_str()), t.hash.as_slice())))
            .collect();

        let mut ops: Vec<Vec<(WriteOp, Option<usize>)>> = (0..run.sources.len()).map(|_| Vec::new()).collect();
        // Where each received item lives on the phone once written: (source index, local id).
        let mut placed: HashMap<usize, (usize, String)> = HashMap::new();
        let mut kept_phone_version: Vec<usize> = Vec::new();
        let mut matched = std::collections::HashSet::new();
        for (ri, r) in run.received.iter().enumerate() {
            // The phone's copy of this item: same identity (UID), else the item our LUID named,
            // else an unmatched phone item with the same content (servers may drop UIDs).
            let found = identity(&r.item)
                .and_then(|u| by_identity.get(&u).copied())
                .or_else(|| {
                    let luid: u64 = r.server_luid.as_deref()?.parse().ok()?;
                    let (si, lid) = by_luid.get(&luid)?;
                    by_local.get(&(*si, lid.as_str())).copied()
                })
                .or_else(|| {
                    by_content.get(&fingerprint(&r.item, class))?.iter().copied().find(|i| !matched.contains(i))
                })
                .filter(|i| !matched.contains(i));
            match found {
                Some(pi) => {
                    matched.insert(pi);
                    let p = &phone[pi];
                    placed.insert(ri, (p.source, p.local_id.clone()));
                    let phone_hash = tracker::hash(&p.item.to_wire(canonical_format(class)));
                    let server_newer = match backed_up.get(&(p.source, p.local_id.as_str())) {
                        // Unchanged since we backed it up: the server's copy is what we sent
                        // (as the server re-encoded it): nothing to write.
                        Some(h) if *h == phone_hash.as_slice() => None,
                        // Changed on the phone since: the phone's copy is newer.
                        Some(_) => Some(false),
                        None => Some(match (modified(&r.item), modified(&p.item)) {
                            (Some(s), Some(ph)) => s > ph,
                            _ => true,
                        }),
                    };
                    if server_newer.is_none() || r.item.to_wire(canonical_format(class)) == p.item.to_wire(canonical_format(class)) {
                        // same content: nothing to write
                    } else if mode == RestoreMode::Replace || server_newer == Some(true) {
                        let item = with_identity_of(r.item.clone(), &p.item);
                        ops[p.source].push((WriteOp::Replace { local_id: p.local_id.clone(), item }, Some(ri)));
                    } else {
                        kept_phone_version.push(ri);
                    }
                }
                None => {
                    let uid = identity(&r.item);
                    let target = uid
                        .as_deref()
                        .and_then(|u| origin.get(crate::item::split_instance_id(u).0).copied())
                        .unwrap_or(0);
                    if let Some(u) = uid {
                        placed.insert(ri, (target, u));
                    }
                    ops[target].push((WriteOp::Add(r.item.clone()), Some(ri)));
                }
            }
        }
        if mode == RestoreMode::Replace {
            for (pi, p) in phone.iter().enumerate() {
                if !matched.contains(&pi) {
                    ops[p.source].push((WriteOp::Delete { local_id: p.local_id.clone() }, None));
                }
            }
        }

        let total: usize = ops.iter().map(Vec::len).sum();
        ctx.observer.progress(class, 0, total as u32);
        let mut failed_received = std::collections::HashSet::new();
        for (si, list) in ops.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let (wops, refs): (Vec<WriteOp>, Vec<Option<usize>>) = list.into_iter().unzip();
            let kinds: Vec<&'static str> = wops
                .iter()
                .map(|o| match o {
                    WriteOp::Add(_) => "add",
                    WriteOp::Replace { .. } => "replace",
                    WriteOp::Delete { .. } => "delete",
                })
                .collect();
            let src = &mut run.sources[si];
            let results = src.write(wops).await.map_err(|e| EngineError::Source(e.to_string()))?;
            for ((res, kind), rref) in results.iter().zip(kinds).zip(refs) {
                if let (Some(ri), Some(id)) = (rref, &res.local_id) {
                    placed.insert(ri, (si, id.clone()));
                }
                match &res.error {
                    None => match kind {
                        "add" => run.report.added += 1,
                        "replace" => run.report.replaced += 1,
                        _ => run.report.deleted += 1,
                    },
                    Some(why) => {
                        run.report.failed += 1;
                        run.report.errors.push(format!("{} {kind} on the phone failed: {why}", src.display_name()));
                        if let Some(ri) = rref {
                            failed_received.insert(ri);
                        }
                    }
                }
            }
        }

        // Rebuild the tracking state from what the stores hold now.
        let mut revisions = BTreeMap::new();
        let mut now_by_id: HashMap<(usize, String), Vec<u8>> = HashMap::new();
        let mut complete = true;
        for (si, src) in run.sources.iter_mut().enumerate() {
            revisions.insert(src.id().to_string(), src.revision().await.map_err(|e| EngineError::Source(e.to_string()))?);
            for it in src.list().await.map_err(|e| EngineError::Source(e.to_string()))? {
                match it.item {
                    Ok(item) => {
                        now_by_id.insert((si, it.local_id), item.to_wire(canonical_format(class)));
                    }
                    Err(_) => complete = false,
                }
            }
        }
        let kept: std::collections::HashSet<usize> = kept_phone_version.into_iter().collect();
        let mut upserts = Vec::new();
        let mut id_maps = Vec::new();
        for (ri, r) in run.received.iter().enumerate() {
            id_maps.push((r.luid.to_string(), r.server_id.clone()));
            if failed_received.contains(&ri) {
                continue;
            }
            let Some((si, local_id)) = placed.get(&ri) else { continue };
            let Some(data) = now_by_id.get(&(*si, local_id.clone())) else { continue };
            upserts.push(CommitItem {
                luid: r.luid,
                source_id: source_ids[*si].as_str().into(),
                local_id: local_id.as_str().into(),
                // The phone kept its newer copy: the server's is older, so the next backup sends it.
                hash: (!kept.contains(&ri)).then(|| tracker::digest(data)),
                // unknown until the next backup reads the item from the phone
                source_digest: None,
            });
        }
        let all_done = run.report.failed == 0 && complete && kept.is_empty();
        let commit = SessionCommit {
            server_url: account.server_url.clone(),
            remote_uri: run.remote_uri.clone(),
            next_anchor: next_anchor.to_string(),
            // Every phone item is the server's: the next backup needs to read nothing.
            source_revisions: if all_done && upserts.len() == now_by_id.len() {
                revisions
            } else {
                BTreeMap::new()
            },
            reset_items: true,
            upserts,
            removals: Vec::new(),
            next_luid: run.next_luid,
            server_other_items: 0,
            id_maps,
            source_digests: Vec::new(),
        };
        self.with_store(|s| s.commit_session(name, class, &commit))?;
        run.report.items = now_by_id.len() as u32;
        run.report.settle();
        ctx.observer.progress(class, total as u32, total as u32);
        tracing::info!(
            job = ctx.id, %class, mode = mode.as_str(), received = run.received.len(), added = run.report.added,
            replaced = run.report.replaced, deleted = run.report.deleted, failed = run.report.failed, "class restored"
        );
        Ok(())
    }
}
