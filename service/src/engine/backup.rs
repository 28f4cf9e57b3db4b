//! The backup of one account: for each class, ask the phone's stores whether anything changed
//! (revision), read and convert the items, diff them against what the server has from us,
//! run ONE SyncML session for every class that needs one, and commit the new state per class
//! only after the session ended well.
//!
//! Safety rules (a backup must never destroy data it did not make):
//! - no state for the class (first backup, new server or database, lost state) → slow sync
//!   (201): the server matches what it has, deletes nothing;
//! - Adds are recorded (with no hash, LUIDs reserved) before they go out: if the session
//!   breaks after the server applied part of it, the next backup sends those LUIDs again as
//!   Replace (or Delete when the item is gone), which the server applies whether or not it got
//!   them the first time: nothing is lost or stored twice;
//! - a session that broke after the server applied part of an incremental Sync leaves items
//!   on the server whose LUIDs it forgot (SyncEvolution keeps the data but not the session's
//!   map). The next backup is a *recovery*: it holds those items back, asks for two-way so
//!   that the server sends its unmapped items, pairs them with the held-back phone items by
//!   identity (UID; UID + RECURRENCE-ID; an SMS's content) and answers with a `Map`, then a
//!   follow-up session in the same job sends the held-back items under their now known (or
//!   new) LUIDs: no duplicate, nothing lost;
//! - refresh-from-client (203) only when the user configured it and state exists;
//! - items the server holds and we do not are counted (`ServerHasOtherData`), never pulled
//!   onto the phone, never deleted;
//! - anchors, tracked items and revisions are written in one transaction after `Finished`.

use std::collections::{BTreeMap, HashMap, HashSet};

use syncml::session::{Change, ClientSession, Event, ItemResult, ServerItem, ServerItemKind, SessionConfig, StoreConfig};

use super::report::{ClassReport, ErrorKind, JobReport, Outcome};
use super::negotiate;
use super::tracker::{self, CurrentItem, Plan, PlannedKind};
use super::{BackupOptions, Engine, EngineError, JobContext};
use crate::class::{DataClass, SyncMode};
use crate::item::{formats_for, Item, WireFormat};
use crate::profile::store::now;
use crate::profile::{Account, ClassSettings, CommitItem, SessionCommit, TrackedItem};
use crate::sources;

/// One class taking part in a backup.
struct ClassRun {
    class: DataClass,
    /// The class's stores, kept open for the session (a slow sync reads skipped items).
    sources: Vec<Box<dyn sources::Source>>,
    settings: ClassSettings,
    /// Whether stored state for this server and database exists (else: slow sync).
    has_state: bool,
    requested: syncml::session::SyncMode,
    format: WireFormat,
    items: Vec<CurrentItem>,
    plan: Plan,
    revisions: BTreeMap<String, String>,
    /// Whether every item of every store could be read and converted.
    complete_listing: bool,
    report: ClassReport,
    /// What we gave the session, by LUID (for matching the server's statuses).
    sent: HashMap<u64, usize>,
    sent_all: bool,
    agreed: Option<syncml::session::SyncMode>,
    next_anchor: String,
    server_other_items: u32,
    id_maps: Vec<(String, String)>,
    /// The format the server agreed to take (set when the session asks for the changes).
    wire: WireFormat,
    /// Recovery from a broken incremental session: the items it may have left on the server
    /// without a map, held back from this session, by match key (see [`match_keys`]) → LUIDs.
    held: HashMap<Vec<u8>, Vec<u64>>,
    /// Held-back LUIDs already paired with a server item.
    claimed: HashSet<u64>,
    /// How many items were held back (matched or not): a follow-up session sends them.
    held_back: usize,
    /// Held-back items the server sent back and we mapped.
    reclaimed: u32,
    /// A first backup: the items are read from the stores while the session sends them.
    stream: Option<Stream>,
}

/// Where the listing of a streamed class is (see [`pull`]). A first backup to a server sends
/// every item, so nothing needs them all at once: each page of a store goes into the session
/// as it is read, and only what the commit needs (LUID, ids, hashes) is kept per item.
#[derive(Default)]
struct Stream {
    /// The store being listed (index into `ClassRun::sources`), and whether its listing began.
    source: usize,
    started: bool,
    /// (store, local id) of every item handed over: a listing may give an item twice.
    seen: HashSet<(usize, std::sync::Arc<str>)>,
    /// A store whose listing failed: what it gave went out, the class is reported failed.
    error: Option<String>,
}

impl ClassRun {
    /// In a recovery session, pair a server Add with a held-back phone item of the same
    /// identity: the LUID to map the server's item to.
    fn reclaim(&mut self, it: &ServerItem) -> Option<u64> {
        if self.held.is_empty() || it.kind != ServerItemKind::Add {
            return None;
        }
        let item = Item::from_wire(&it.data, self.wire).ok()?;
        for key in match_keys(&item, self.class) {
            let Some(luids) = self.held.get_mut(&key) else { continue };
            while let Some(luid) = luids.pop() {
                if self.claimed.insert(luid) {
                    self.reclaimed += 1;
                    return Some(luid);
                }
            }
        }
        None
    }
}

/// What pairs a server item with the phone item it is a copy of: its identity (UID, UID +
/// RECURRENCE-ID, an SMS's content) where the server kept it, else who or what it is about
/// (servers drop contacts' UIDs): see [`super::restore::fingerprint`].
fn match_keys(item: &Item, class: DataClass) -> Vec<Vec<u8>> {
    let mut keys = Vec::with_capacity(2);
    if let Some(id) = item.identity() {
        keys.push([b"i:".as_slice(), id.as_bytes()].concat());
    }
    keys.push([b"f:".as_slice(), &super::restore::fingerprint(item, class)].concat());
    keys
}

fn proto_mode(m: SyncMode) -> syncml::session::SyncMode {
    use syncml::session::SyncMode as P;
    match m {
        SyncMode::TwoWay => P::TwoWay,
        SyncMode::Slow => P::Slow,
        SyncMode::OneWayFromClient => P::OneWayFromClient,
        SyncMode::RefreshFromClient => P::RefreshFromClient,
        SyncMode::OneWayFromServer => P::OneWayFromServer,
        SyncMode::RefreshFromServer => P::RefreshFromServer,
    }
}

fn mode_name(m: syncml::session::SyncMode) -> &'static str {
    SyncMode::ALL.into_iter().find(|c| proto_mode(*c) == m).map_or("unknown", SyncMode::as_str)
}

/// The mode a backup asks for: slow without usable state, else the configured mode as long as
/// it sends the phone's data (the from-server modes belong to restore: a backup uses
/// one-way-from-client for them).
fn backup_mode(configured: SyncMode, has_state: bool) -> SyncMode {
    if !has_state {
        return SyncMode::Slow;
    }
    match configured {
        SyncMode::OneWayFromServer | SyncMode::RefreshFromServer => SyncMode::OneWayFromClient,
        m => m,
    }
}

/// Refuse a backup that would delete more than half of what the server has from us, or an
/// explicit refresh-from-client that would leave fewer items there than the last good backup.
fn mass_delete_guard(requested: SyncMode, plan: &Plan, last_good: usize, current: usize) -> Result<(), String> {
    let deletes = plan.changes.iter().filter(|p| p.kind == PlannedKind::Delete).count();
    match requested {
        SyncMode::RefreshFromClient if current < last_good => Err(format!(
            "replacing the server's copy would leave {current} item(s) where the last backup had {last_good}; \
             confirm with allow_mass_delete"
        )),
        SyncMode::TwoWay | SyncMode::OneWayFromClient if last_good > 0 && deletes * 2 > last_good => Err(format!(
            "this backup would delete {deletes} of {last_good} item(s) on the server; confirm with allow_mass_delete"
        )),
        _ => Ok(()),
    }
}

fn success(kind: &PlannedKind, status: u16) -> bool {
    match kind {
        // 211: item not deleted because the server no longer has it: the goal is met.
        PlannedKind::Delete => matches!(status, 200 | 211),
        // 418: already exists: the server has the item.
        PlannedKind::Add => matches!(status, 200 | 201 | 207 | 208 | 209 | 418),
        PlannedKind::Replace => matches!(status, 200 | 201 | 207 | 208 | 209),
    }
}

/// Per store id: the digests of tracked items the server confirmed → (local id, hash sent).
type KnownDigests = HashMap<String, HashMap<[u8; 16], (std::sync::Arc<str>, [u8; 16])>>;

fn known_digests(tracked: &[TrackedItem]) -> KnownDigests {
    let mut known: KnownDigests = HashMap::new();
    for t in tracked {
        let (Ok(d), Ok(h)) = (<[u8; 16]>::try_from(t.source_digest.as_slice()), <[u8; 16]>::try_from(t.hash.as_slice()))
        else {
            continue;
        };
        known.entry(t.source_id.clone()).or_default().insert(d, (t.local_id.as_str().into(), h));
    }
    known
}

/// What reading the stores of a class gave.
struct Listing {
    items: Vec<CurrentItem>,
    failed: u32,
    errors: Vec<String>,
}

/// Read every store of a class page by page, keeping only each item's wire form in
/// `format` (never the whole store parsed at once). Items whose digest is in `known` are
/// not converted: they come with the hash the server has and no data.
async fn read_sources(
    sources: &mut [Box<dyn sources::Source>],
    format: WireFormat,
    known: &KnownDigests,
    ctx: &JobContext,
) -> Result<Listing, EngineError> {
    let mut out = Listing { items: Vec::new(), failed: 0, errors: Vec::new() };
    let none = HashMap::new();
    for src in sources.iter_mut() {
        let source_id: std::sync::Arc<str> = src.id().into();
        let display_name = src.display_name().to_string();
        let known_here = known.get(src.id()).unwrap_or(&none);
        let known_set: HashSet<[u8; 16]> = known_here.keys().copied().collect();
        let (first_item, first_error) = (out.items.len(), out.errors.len());
        let mut page_failures = 0u32;
        let (items, errors) = (&mut out.items, &mut out.errors);
        let mut sink = |page: sources::Page| match page {
            sources::Page::Restart => {
                items.truncate(first_item);
                errors.truncate(first_error);
                page_failures = 0;
            }
            sources::Page::Unchanged(digests) => {
                for d in digests {
                    if let Some((local_id, hash)) = known_here.get(&d) {
                        items.push(CurrentItem {
                            source_id: source_id.clone(),
                            local_id: local_id.clone(),
                            data: Vec::new(),
                            digest: Some(d),
                            known_hash: Some(*hash),
                        });
                    }
                }
            }
            sources::Page::Items(listed) => {
                for it in listed {
                    match it.item {
                        Ok(item) => items.push(CurrentItem {
                            source_id: source_id.clone(),
                            local_id: it.local_id.into(),
                            data: item.into_wire(format),
                            digest: it.digest,
                            known_hash: None,
                        }),
                        Err(why) => {
                            page_failures += 1;
                            errors.push(format!("{display_name} item {}: {why}", it.local_id));
                        }
                    }
                }
            }
        };
        src.list_pages(&known_set, &mut sink).await.map_err(|e| EngineError::Source(e.to_string()))?;
        out.failed += page_failures;
        if ctx.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
    }
    out.items.shrink_to_fit();
    Ok(out)
}

impl Engine {
    pub(super) async fn backup(
        &self,
        account: &Account,
        classes: &[DataClass],
        options: &BackupOptions,
        ctx: &JobContext,
        report: &mut JobReport,
    ) -> Result<(), EngineError> {
        let follow_up = self.backup_round(account, classes, options, ctx, report).await?;
        if !follow_up.is_empty() {
            tracing::info!(job = ctx.id, classes = ?follow_up, "recovered from a broken session; sending the held-back items");
            // Another broken session here leaves a recovery for the next backup.
            self.backup_round(account, &follow_up, options, ctx, report).await?;
        }
        Ok(())
    }

    /// One session for `classes` (none when nothing changed). Returns the classes that need a
    /// follow-up session (a recovery held items back).
    async fn backup_round(
        &self,
        account: &Account,
        classes: &[DataClass],
        options: &BackupOptions,
        ctx: &JobContext,
        report: &mut JobReport,
    ) -> Result<Vec<DataClass>, EngineError> {
        let name = account.name();
        let password = self.password_for(account).await?;
        // One connection for the whole job: EDS keeps opened books alive while it is on the bus.
        let phone_bus = zbus::Connection::session()
            .await
            .map_err(|e| EngineError::Source(format!("cannot connect to the session bus: {e}")))?;

        let mut runs = Vec::new();
        for &class in classes {
            let settings = account.class(class);
            let mut cr = ClassReport::new("none");
            match self.prepare_class(account, class, settings, options, &phone_bus, ctx).await {
                Ok(Some(run)) => runs.push(run),
                Ok(None) => {
                    // Nothing changed since the last good session: no item read, no network.
                    // (Items only the server holds are reported by the session that found them.)
                    cr.settle();
                    report.put_class(class, cr);
                }
                Err(EngineError::Unavailable(why)) if super::skippable(class) => {
                    tracing::info!(job = ctx.id, %class, reason = %why, "class skipped: no store on this phone");
                    cr.skip(why);
                    report.put_class(class, cr);
                }
                Err(e) => {
                    tracing::warn!(job = ctx.id, %class, error = %e, "class cannot be backed up");
                    cr.fail(e.kind(), e.to_string());
                    report.put_class(class, cr);
                }
            }
            if ctx.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
        }
        if runs.is_empty() {
            return Ok(Vec::new());
        }

        let device_id = self.with_store(|s| s.device_id())?;
        let credentials = self.credentials(account, password)?;
        let anchor = now().to_string();
        let stores = runs
            .iter_mut()
            .map(|r| {
                r.next_anchor = anchor.clone();
                StoreConfig {
                    local_uri: super::local_uri(r.class),
                    remote_uri: r.settings.remote_uri.clone(),
                    mode: r.requested,
                    last_anchor: if r.has_state { self.last_anchor(&name, r.class) } else { None },
                    next_anchor: anchor.clone(),
                    content_type: r.format.mime().to_string(),
                    content_version: r.format.version().to_string(),
                }
            })
            .collect();
        let remote_uris: Vec<&str> = runs.iter().map(|r| r.settings.remote_uri.as_str()).collect();
        let exchange = self.devinf_exchange(
            account,
            super::devinf::client_devinf(&device_id, &runs.iter().map(|r| (r.class, r.format)).collect::<Vec<_>>()),
            &remote_uris,
            true,
        )?;
        let cfg = SessionConfig {
            server_url: account.server_url.clone(),
            device_id: device_id.clone(),
            session_id: self.next_session_id().to_string(),
            credentials,
            max_msg_size: self.options.max_msg_size,
            max_obj_size: self.options.max_obj_size,
            devinf: exchange.ours.clone(),
            send_devinf: exchange.send_ours,
            known_server_devinf: exchange.known_theirs.clone(),
            stores,
        };

        let mut follow_up = Vec::new();
        match self.run_session(cfg, self.encoding_for(&name)?, account, &mut runs, &name, ctx).await {
            Ok(sr) => {
                report.messages_sent += sr.messages_sent;
                report.bytes_sent += sr.bytes_sent;
                report.bytes_received += sr.bytes_received;
                self.remember_nonce(&name, &sr)?;
                self.remember_encoding(&name, &sr)?;
                self.remember_devinf(account, &exchange, &sr)?;
                for w in &sr.warnings {
                    tracing::info!(job = ctx.id, warning = %w, "tolerated from the server");
                }
                for mut run in runs {
                    let store_report = sr.stores.iter().find(|s| s.local_uri == super::local_uri(run.class));
                    self.finish_class(&name, account, &mut run, store_report, ctx)?;
                    if run.held_back > 0 && matches!(run.report.state, Outcome::Succeeded | Outcome::Partial) {
                        follow_up.push(run.class);
                    }
                    report.put_class(run.class, run.report);
                }
            }
            Err(e) => {
                tracing::warn!(job = ctx.id, error = %e, "session failed; no sync state was changed");
                // What went wrong may be what we took for known: exchange DevInf next time.
                self.with_store(|s| s.forget_devinf(&name))?;
                for mut run in runs {
                    run.report.fail(e.kind(), e.to_string());
                    report.put_class(run.class, run.report);
                }
            }
        }
        Ok(follow_up)
    }

    fn last_anchor(&self, account: &str, class: DataClass) -> Option<String> {
        self.with_store(|s| s.class_state(account, class)).ok().flatten().and_then(|s| s.last_anchor)
    }

    /// Decide whether the class needs a session, and if so read and diff its items.
    async fn prepare_class(
        &self,
        account: &Account,
        class: DataClass,
        settings: ClassSettings,
        options: &BackupOptions,
        phone_bus: &zbus::Connection,
        ctx: &JobContext,
    ) -> Result<Option<ClassRun>, EngineError> {
        let name = &account.name();
        let sctx = sources::SourceContext { conn: phone_bus, store: &self.store, account, state_dir: self.options.state_dir.as_deref() };
        let mut sources = sources::open_sources(class, &sctx).await.map_err(super::source_error)?;
        let state = self.with_store(|s| s.class_state(name, class))?;
        let has_state = state.as_ref().is_some_and(|st| st.is_for(&account.server_url, &settings.remote_uri));
        let mut revisions = BTreeMap::new();
        for src in sources.iter_mut() {
            let rev = src.revision().await.map_err(|e| EngineError::Source(e.to_string()))?;
            revisions.insert(src.id().to_string(), rev);
        }
        let mut requested =
            if options.replace_server { SyncMode::RefreshFromClient } else { backup_mode(settings.mode, has_state) };
        if let Some(st) = &state {
            let same_rev = !revisions.is_empty() && st.source_revisions == revisions;
            if has_state && !st.needs_slow_sync && same_rev && requested != SyncMode::Slow && requested != SyncMode::RefreshFromClient
            {
                tracing::info!(job = ctx.id, %class, "unchanged since the last backup");
                return Ok(None);
            }
        }

        let format = super::restore::canonical_format(class);
        let mut report = ClassReport::new(requested.as_str());
        let tracked: Vec<TrackedItem> = if has_state { self.with_store(|s| s.tracked_items(name, class))? } else { Vec::new() };
        // An incremental backup does not convert items the server already has as they are
        // (their digest is known); a session that must send everything (slow, refresh) reads
        // them after all (see `fill_skipped`).
        let incremental = has_state && matches!(requested, SyncMode::TwoWay | SyncMode::OneWayFromClient);
        let known = if incremental {
            known_digests(&tracked)
        } else {
            HashMap::new()
        };
        // A first backup to this server sends every item: they stream into the session (see
        // `Stream`) instead of all being read first.
        let stream = !has_state;
        let listing = if stream {
            Listing { items: Vec::new(), failed: 0, errors: Vec::new() }
        } else {
            read_sources(&mut sources, format, &known, ctx).await?
        };
        drop(known);
        // (a streamed listing is complete once it has reached its end: see `pull`)
        let complete_listing = !stream && listing.failed == 0;
        report.failed += listing.failed;
        report.errors.extend(listing.errors);
        let items = listing.items;
        report.items = items.len() as u32 + report.failed;
        let next_luid = self.with_store(|s| s.next_luid(name, class))?;
        let mut plan = tracker::plan(&items, &tracked, next_luid);
        if !options.allow_mass_delete {
            let last_good = state.as_ref().map_or(0, |_| tracked.len());
            mass_delete_guard(requested, &plan, last_good, items.len()).map_err(EngineError::MassDelete)?;
        }
        // Items a broken session sent as Add (recorded with no hash) may be on the server
        // without a map: hold them back and let the server show them (see the module doc).
        let broken_before = state.as_ref().is_some_and(|st| st.needs_slow_sync);
        let mut held: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
        let mut held_back = 0;
        if incremental && broken_before {
            let in_flight: HashSet<u64> = tracked.iter().filter(|t| t.hash.is_empty()).map(|t| t.luid).collect();
            plan.changes.retain(|p| {
                let Some(ix) = p.item.filter(|_| p.kind == PlannedKind::Replace && in_flight.contains(&p.luid)) else {
                    return true;
                };
                if let Ok(item) = Item::from_wire(&items[ix].data, format) {
                    for key in match_keys(&item, class) {
                        held.entry(key).or_default().push(p.luid);
                    }
                }
                held_back += 1;
                false
            });
            if held_back > 0 {
                requested = SyncMode::TwoWay;
                tracing::info!(job = ctx.id, %class, held_back, "recovering from a broken session");
            }
        }
        tracing::info!(
            job = ctx.id, %class, items = items.len(), changes = plan.changes.len(), unchanged = plan.unchanged,
            mode = %requested, streamed = stream, "class prepared"
        );
        Ok(Some(ClassRun {
            class,
            sources,
            settings,
            has_state,
            requested: proto_mode(requested),
            format,
            items,
            plan,
            revisions,
            complete_listing,
            report,
            sent: HashMap::new(),
            sent_all: false,
            agreed: None,
            next_anchor: String::new(),
            server_other_items: 0,
            id_maps: Vec::new(),
            wire: format,
            held,
            claimed: HashSet::new(),
            held_back,
            reclaimed: 0,
            stream: stream.then(Stream::default),
        }))
    }

    /// Drive the sans-IO session: post what it wants sent, feed it answers and changes.
    async fn run_session(
        &self,
        cfg: SessionConfig,
        encoding: syncml::session::Encoding,
        account_obj: &Account,
        runs: &mut [ClassRun],
        account: &str,
        ctx: &JobContext,
    ) -> Result<syncml::session::SessionReport, EngineError> {
        let transport = self.transport_for(account_obj);
        let deadline = tokio::time::Instant::now() + self.options.session_deadline;
        let mut session = ClientSession::with_encoding(cfg, encoding);
        loop {
            if ctx.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            match session.poll() {
                Event::Send { url, body, content_type } => {
                    let resp = self.post(&transport, deadline, url, content_type, body).await?;
                    session.receive(resp.status, resp.content_type.as_deref(), &resp.body);
                    for run in runs.iter().filter(|r| r.agreed.is_some()) {
                        let (done, total) = session.progress(&super::local_uri(run.class));
                        ctx.observer.progress(run.class, done, total);
                    }
                }
                Event::NeedChanges { store, mode } => {
                    let Some(run) = runs.iter_mut().find(|r| super::local_uri(r.class) == store) else {
                        session.provide_changes(&store, Vec::new());
                        continue;
                    };
                    // From here the server may receive changes: until this session ends well
                    // the next one must be a slow sync.
                    self.with_store(|s| s.mark_needs_slow_sync(account, run.class))?;
                    // Adds about to go out are recorded first (with no hash) and their LUIDs
                    // reserved: if the session breaks after the server applied some of them, the
                    // next backup sends those LUIDs again as Replace (or Delete if the item is
                    // gone), which the server applies whether or not it has them: no duplicate.
                    if matches!(mode, syncml::session::SyncMode::TwoWay | syncml::session::SyncMode::OneWayFromClient)
                        && run.has_state
                    {
                        let in_flight: Vec<TrackedItem> = run
                            .plan
                            .changes
                            .iter()
                            .filter(|p| p.kind == PlannedKind::Add)
                            .map(|p| TrackedItem {
                                luid: p.luid,
                                source_id: p.source_id.to_string(),
                                local_id: p.local_id.to_string(),
                                // not confirmed yet
                                ..TrackedItem::default()
                            })
                            .collect();
                        let next = run.plan.next_luid;
                        self.with_store(|s| s.record_in_flight(account, run.class, &in_flight, next))?;
                    }
                    let format = negotiate::choose(formats_for(run.class), session.server_devinf(), &run.settings.remote_uri);
                    run.wire = format;
                    if run.stream.is_some() && mode.client_sends() {
                        agree(run, mode);
                        let total = stream_total(run).await;
                        if let (Some(t), Some(stream)) = (total, run.stream.as_mut()) {
                            // what is kept per item, sized once
                            let t = t as usize;
                            stream.seen.reserve(t);
                            run.sent.reserve(t);
                            if run.sent_all { run.plan.all.reserve_exact(t) } else { run.plan.changes.reserve_exact(t) }
                        }
                        tracing::info!(job = ctx.id, class = %run.class, mode = mode_name(mode), format = format.mime(), items = ?total, "server agreed; streaming the items");
                        ctx.observer.progress(run.class, 0, total.unwrap_or(0));
                        let (first, last) = pull(run, format, ctx).await?;
                        session.provide_changes_streamed(&store, format.mime(), format.version(), first, total);
                        if last {
                            session.more_changes(&store, Vec::new(), true);
                        }
                        continue;
                    }
                    if matches!(mode, syncml::session::SyncMode::Slow | syncml::session::SyncMode::RefreshFromClient) {
                        // The server wants everything (e.g. 508): read what was skipped as unchanged.
                        fill_skipped(run, ctx).await?;
                    }
                    let changes = changes_for(run, mode, format);
                    tracing::info!(
                        job = ctx.id, class = %run.class, mode = mode_name(mode), format = format.mime(),
                        changes = changes.len(), "server agreed"
                    );
                    ctx.observer.progress(run.class, 0, changes.len() as u32);
                    session.provide_changes_as(&store, format.mime(), format.version(), changes);
                }
                Event::NeedMoreChanges { store } => {
                    let Some(run) = runs.iter_mut().find(|r| super::local_uri(r.class) == store) else {
                        session.more_changes(&store, Vec::new(), true);
                        continue;
                    };
                    let (batch, last) = pull(run, run.wire, ctx).await?;
                    session.more_changes(&store, batch, last);
                }
                Event::ServerItems { store, items } => {
                    let mut run = runs.iter_mut().find(|r| super::local_uri(r.class) == store);
                    let mut results = Vec::with_capacity(items.len());
                    for it in &items {
                        // A held-back item the server kept from the broken session: map it.
                        match run.as_mut().and_then(|r| r.reclaim(it)) {
                            Some(luid) => {
                                results.push(ItemResult { handle: it.handle, status: 201, luid: Some(luid.to_string()) })
                            }
                            None => results.push(ItemResult { handle: it.handle, status: 200, luid: None }),
                        }
                    }
                    if let Some(run) = run {
                        for (it, res) in items.iter().zip(&results) {
                            match it.kind {
                                _ if res.luid.is_some() => {}
                                ServerItemKind::Add => run.server_other_items += 1,
                                // e.g. the server merged one of our items with one it had
                                _ => run.report.errors.push(format!(
                                    "the server changed item {} on its side (not applied to the phone by a backup)",
                                    it.local_id.as_deref().filter(|l| !l.is_empty()).unwrap_or(&it.server_id)
                                )),
                            }
                        }
                    }
                    session.server_item_results(&store, results);
                }
                Event::Finished(report) => return Ok(report),
                Event::Failed(e) => return Err(EngineError::Session(e)),
            }
        }
    }

    /// Read the server's statuses for one class and commit what it confirmed.
    fn finish_class(
        &self,
        account_name: &str,
        account: &Account,
        run: &mut ClassRun,
        store_report: Option<&syncml::session::StoreReport>,
        ctx: &JobContext,
    ) -> Result<(), EngineError> {
        let Some(sr) = store_report else {
            run.report.fail(ErrorKind::ServerError, "the server did not take part with this database".into());
            return Ok(());
        };
        if let Some(why) = &sr.error {
            // With 420 the server took what fitted: record that, then report the class failed.
            if !sr.server_full {
                run.report.fail(ErrorKind::ServerError, format!("database '{}': {why}", run.settings.remote_uri));
                return Ok(());
            }
        }
        if sr.alert_status >= 300 && sr.alert_status != 508 {
            run.report.fail(
                ErrorKind::ServerError,
                format!("the server refused database '{}' (status {})", run.settings.remote_uri, sr.alert_status),
            );
            return Ok(());
        }
        if let Some(st) = sr.sync_status.filter(|s| *s >= 300) {
            run.report.fail(ErrorKind::ServerError, format!("the server refused the changes (status {st})"));
            return Ok(());
        }
        let mode = run.agreed.unwrap_or(sr.mode);
        run.report.mode = mode_name(mode).to_string();
        let list = if run.sent_all { &run.plan.all } else { &run.plan.changes };
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        let mut answered = vec![false; list.len()];
        for r in &sr.item_results {
            // Our LUIDs are numbers; a status for anything else is not about what we sent.
            let Some(&i) = r.luid.parse::<u64>().ok().and_then(|l| run.sent.get(&l)) else { continue };
            answered[i] = true;
            let p = &list[i];
            let kind = if run.sent_all { PlannedKind::Replace } else { p.kind.clone() };
            if success(&kind, r.status) {
                match p.kind {
                    PlannedKind::Delete => {
                        removals.push(p.luid);
                        run.report.deleted += 1;
                    }
                    _ => {
                        upserts.push(CommitItem {
                            luid: p.luid,
                            source_id: p.source_id.clone(),
                            local_id: p.local_id.clone(),
                            hash: Some(p.hash),
                            source_digest: p.digest,
                        });
                        match (run.sent_all, &p.kind, r.status) {
                            (true, _, 201) | (false, PlannedKind::Add, _) => run.report.added += 1,
                            _ => run.report.replaced += 1,
                        }
                    }
                }
            } else {
                run.report.failed += 1;
                run.report.errors.push(format!(
                    "item {} ({}) was refused by the server with status {} ({})",
                    p.local_id,
                    match kind {
                        PlannedKind::Add => "add",
                        PlannedKind::Replace => "replace",
                        PlannedKind::Delete => "delete",
                    },
                    r.status,
                    r.error.clone().unwrap_or_else(|| syncml::session::status_description(r.status).to_string())
                ));
            }
        }
        for (i, done) in answered.iter().enumerate() {
            if !done && run.sent.contains_key(&list[i].luid) {
                run.report.failed += 1;
                run.report.errors.push(format!("item {} got no status from the server", list[i].local_id));
            }
        }
        // Held-back items still have to be sent: the stores must be read again next time.
        // (what was sent is counted; the map goes before the commit needs memory)
        let sent = run.sent.len() as u32;
        run.sent = HashMap::new();
        let all_confirmed = run.report.failed == 0 && run.complete_listing && run.held_back == 0;
        let previous_other = self.with_store(|s| s.class_state(account_name, run.class))?.map_or(0, |s| s.server_other_items);
        let commit = SessionCommit {
            server_url: account.server_url.clone(),
            remote_uri: run.settings.remote_uri.clone(),
            next_anchor: sr.next_anchor.clone(),
            // With any item unconfirmed, the next backup must read the stores again.
            source_revisions: if all_confirmed { run.revisions.clone() } else { BTreeMap::new() },
            reset_items: run.sent_all || !run.has_state,
            upserts,
            removals,
            next_luid: run.plan.next_luid,
            // A slow sync counts the server's other items afresh; other sessions cannot see
            // them, so the count found earlier is kept until the user decides about them.
            server_other_items: if run.sent_all { run.server_other_items } else { previous_other + run.server_other_items },
            id_maps: std::mem::take(&mut run.id_maps),
            // after a slow sync every item was written afresh, with its digest
            source_digests: if run.sent_all {
                Vec::new()
            } else {
                run.plan.digest_updates.iter().map(|(luid, d)| (*luid, d.to_vec())).collect()
            },
        };
        self.with_store(|s| s.commit_session(account_name, run.class, &commit))?;
        run.report.server_other_items = run.server_other_items;
        if let Some(why) = run.stream.as_mut().and_then(|s| s.error.take()) {
            run.report.fail(ErrorKind::SourceUnavailable, why);
        }
        if sr.server_full {
            run.report.fail(
                ErrorKind::ServerFull,
                format!("the server's database '{}' is full; what it took is recorded", run.settings.remote_uri),
            );
        }
        run.report.settle();
        ctx.observer.progress(run.class, sent, sent);
        tracing::info!(
            job = ctx.id, class = %run.class, mode = %run.report.mode, added = run.report.added,
            replaced = run.report.replaced, deleted = run.report.deleted, failed = run.report.failed,
            server_other_items = run.server_other_items, held_back = run.held_back, reclaimed = run.reclaimed,
            "class backed up"
        );
        Ok(())
    }
}

/// Convert the items the listing skipped as unchanged (a session that sends every item needs
/// them): read the stores again, without skipping. An item gone since keeps no data and is
/// not sent.
async fn fill_skipped(run: &mut ClassRun, ctx: &JobContext) -> Result<(), EngineError> {
    let mut skipped: HashMap<(std::sync::Arc<str>, std::sync::Arc<str>), usize> = HashMap::new();
    for (i, c) in run.items.iter().enumerate().filter(|(_, c)| c.unread()) {
        skipped.insert((c.source_id.clone(), c.local_id.clone()), i);
    }
    if skipped.is_empty() {
        return Ok(());
    }
    tracing::info!(job = ctx.id, class = %run.class, items = skipped.len(), "the server wants every item: reading the unchanged ones");
    let listing = read_sources(&mut run.sources, run.format, &HashMap::new(), ctx).await?;
    for c in listing.items {
        if let Some(&i) = skipped.get(&(c.source_id.clone(), c.local_id.clone())) {
            run.items[i].data = c.data;
        }
    }
    Ok(())
}

/// The server agreed on `mode` for the class: how what is sent is recorded from here (every
/// item for slow and refresh, the changes otherwise).
fn agree(run: &mut ClassRun, mode: syncml::session::SyncMode) {
    use syncml::session::SyncMode as P;
    run.agreed = Some(mode);
    run.sent.clear();
    run.sent_all = matches!(mode, P::Slow | P::RefreshFromClient);
}

/// How many items the stores of a streamed class hold, if every one can tell (for
/// NumberOfChanges and progress).
async fn stream_total(run: &mut ClassRun) -> Option<u32> {
    let mut total = 0u32;
    for src in run.sources.iter_mut() {
        total = total.saturating_add(src.count().await.ok()??);
    }
    Some(total)
}

/// The next changes of a streamed class in the wire format `format`: at least one, unless
/// the listing is over (`true`). Each item is planned (new LUID, hash of its canonical form,
/// the store's digest) as it is handed over; its bytes go to the session only. An item that
/// cannot be converted is reported and skipped; a store that cannot be listed is reported,
/// and the others are still sent.
async fn pull(run: &mut ClassRun, format: WireFormat, ctx: &JobContext) -> Result<(Vec<Change>, bool), EngineError> {
    let Some(stream) = run.stream.as_mut() else { return Ok((Vec::new(), true)) };
    // (set by `agree` before the first pull)
    let mode = run.agreed.unwrap_or(syncml::session::SyncMode::Slow);
    loop {
        if ctx.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let Some(src) = run.sources.get_mut(stream.source) else {
            run.complete_listing = stream.error.is_none() && run.report.failed == 0;
            // the listing is over: nothing can come twice any more
            stream.seen = HashSet::new();
            return Ok((Vec::new(), true));
        };
        let page = match src.next_page(!stream.started).await {
            Ok(Some(page)) => page,
            Ok(None) => {
                (stream.source, stream.started) = (stream.source + 1, false);
                continue;
            }
            Err(e) => {
                tracing::warn!(job = ctx.id, class = %run.class, store = src.id(), error = %e, "store cannot be listed");
                let why = format!("{}: {e}", src.display_name());
                run.report.errors.push(why.clone());
                stream.error.get_or_insert(why);
                (stream.source, stream.started) = (stream.source + 1, false);
                continue;
            }
        };
        stream.started = true;
        let source_id: std::sync::Arc<str> = src.id().into();
        let mut out = Vec::with_capacity(page.len());
        for it in page {
            let local_id: std::sync::Arc<str> = it.local_id.as_str().into();
            if !stream.seen.insert((stream.source, local_id.clone())) {
                continue;
            }
            run.report.items += 1;
            let item = match it.item {
                Ok(item) => item,
                Err(why) => {
                    run.report.failed += 1;
                    run.report.errors.push(format!("{} item {}: {why}", src.display_name(), it.local_id));
                    continue;
                }
            };
            // tracked by the hash of its canonical form, sent in the negotiated one
            let (hash, data) = if format == run.format {
                let data = item.into_wire(format);
                (tracker::digest(&data), data)
            } else {
                (tracker::digest(&item.to_wire(run.format)), item.into_wire(format))
            };
            let luid = run.plan.next_luid;
            run.plan.next_luid += 1;
            let planned = tracker::Planned { kind: PlannedKind::Add, luid, source_id: source_id.clone(), local_id, hash, item: None, digest: it.digest };
            let list = if run.sent_all { &mut run.plan.all } else { &mut run.plan.changes };
            run.sent.insert(luid, list.len());
            list.push(planned);
            out.push(change(mode, &PlannedKind::Add, luid.to_string(), || data));
        }
        if !out.is_empty() {
            return Ok((out, false));
        }
    }
}

/// The changes to give the session once the server agreed on `mode`.
fn changes_for(run: &mut ClassRun, mode: syncml::session::SyncMode, format: WireFormat) -> Vec<Change> {
    use syncml::session::SyncMode as P;
    agree(run, mode);
    run.sent.reserve(run.plan.all.len().max(run.plan.changes.len()));
    let list = match mode {
        P::Slow | P::RefreshFromClient => &run.plan.all,
        P::TwoWay | P::OneWayFromClient => &run.plan.changes,
        P::OneWayFromServer | P::RefreshFromServer => return Vec::new(),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        // An unchanged item that vanished before a slow sync could read it: nothing to send.
        if p.item.is_some_and(|ix| run.items[ix].unread()) {
            continue;
        }
        let luid = p.luid.to_string();
        run.sent.insert(p.luid, i);
        // Items are tracked in the class's canonical format; another negotiated format is
        // written from the parsed item. The bytes move into the session (it asks for a
        // store's changes once per session: a restart happens before the server's first
        // answer), so a backup holds each item once.
        let canonical = run.format;
        let items = &mut run.items;
        let data = || {
            let Some(ix) = p.item else { return Vec::new() };
            let bytes = std::mem::take(&mut items[ix].data);
            if format == canonical {
                return bytes;
            }
            match Item::from_wire(&bytes, canonical) {
                Ok(item) => item.to_wire(format),
                Err(_) => bytes,
            }
        };
        out.push(change(mode, &p.kind, luid, data));
    }
    out
}

/// The command that carries a planned item in `mode`: in a refresh every item is an Add, in a
/// slow sync a Replace (the server pairs it with what it holds); otherwise as planned.
fn change(mode: syncml::session::SyncMode, kind: &PlannedKind, luid: String, data: impl FnOnce() -> Vec<u8>) -> Change {
    use syncml::session::SyncMode as P;
    match (mode, kind) {
        (P::RefreshFromClient, _) => Change::Add { luid, data: data() },
        (P::Slow, _) => Change::Replace { luid, data: data() },
        (_, PlannedKind::Add) => Change::Add { luid, data: data() },
        (_, PlannedKind::Replace) => Change::Replace { luid, data: data() },
        (_, PlannedKind::Delete) => Change::Delete { luid },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_backup_is_slow_and_from_server_modes_never_back_up() {
        assert_eq!(backup_mode(SyncMode::OneWayFromClient, false), SyncMode::Slow);
        assert_eq!(backup_mode(SyncMode::RefreshFromClient, false), SyncMode::Slow);
        assert_eq!(backup_mode(SyncMode::OneWayFromClient, true), SyncMode::OneWayFromClient);
        assert_eq!(backup_mode(SyncMode::RefreshFromServer, true), SyncMode::OneWayFromClient);
        assert_eq!(backup_mode(SyncMode::TwoWay, true), SyncMode::TwoWay);
    }

    #[test]
    fn mass_delete_guard_needs_more_than_half() {
        let tracked: Vec<TrackedItem> = (1..=10)
            .map(|i| TrackedItem { luid: i, source_id: "s".into(), local_id: i.to_string(), hash: vec![], ..Default::default() })
            .collect();
        let current = |n: usize| -> Vec<CurrentItem> {
            (1..=n).map(|i| CurrentItem::new("s".into(), i.to_string(), vec![])).collect()
        };
        let p5 = tracker::plan(&current(5), &tracked, 11);
        assert!(mass_delete_guard(SyncMode::OneWayFromClient, &p5, 10, 5).is_ok(), "half is allowed");
        let p4 = tracker::plan(&current(4), &tracked, 11);
        assert!(mass_delete_guard(SyncMode::OneWayFromClient, &p4, 10, 4).is_err());
        let p0 = tracker::plan(&[], &tracked, 11);
        assert!(mass_delete_guard(SyncMode::TwoWay, &p0, 10, 0).is_err());
        // a slow sync deletes nothing on the server
        assert!(mass_delete_guard(SyncMode::Slow, &p0, 10, 0).is_ok());
        assert!(mass_delete_guard(SyncMode::RefreshFromClient, &p4, 10, 4).is_err());
        assert!(mass_delete_guard(SyncMode::RefreshFromClient, &p5, 0, 5).is_ok());
    }

    #[test]
    fn a_server_copy_without_uid_pairs_with_the_held_back_contact() {
        let ours = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:pas-id-1\r\nFN:Jürgen Müller\r\nN:Müller;Jürgen;;;\r\n\
                    TEL;TYPE=CELL:+49 170 1234501\r\nEMAIL;TYPE=INTERNET:Juergen@example.org\r\nEND:VCARD\r\n";
        // what SyncEvolution sends back: no UID, its PRODID and REV, numbers and case as stored
        let theirs = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Synthesis AG//NONSGML SyncML Engine V3.4.0.47//EN\r\n\
                      REV:20100328T103410Z\r\nN:Müller;Jürgen;;;\r\nFN:Jürgen Müller\r\nTEL;TYPE=CELL:+491701234501\r\n\
                      EMAIL;TYPE=INTERNET:juergen@example.org\r\nEND:VCARD\r\n";
        let other = theirs.replace("Jürgen Müller", "Jürgen Meier");
        let ours = Item::from_wire(ours.as_bytes(), WireFormat::VCard30).unwrap();
        let theirs = Item::from_wire(theirs.as_bytes(), WireFormat::VCard30).unwrap();
        let other = Item::from_wire(other.as_bytes(), WireFormat::VCard30).unwrap();
        let held: HashSet<Vec<u8>> = match_keys(&ours, DataClass::Contacts).into_iter().collect();
        assert!(match_keys(&theirs, DataClass::Contacts).iter().any(|k| held.contains(k)));
        assert!(!match_keys(&other, DataClass::Contacts).iter().any(|k| held.contains(k)));
    }

    #[test]
    fn statuses_that_count_as_done() {
        assert!(success(&PlannedKind::Add, 201));
        assert!(success(&PlannedKind::Replace, 200));
        assert!(success(&PlannedKind::Delete, 211));
        assert!(!success(&PlannedKind::Add, 420));
        assert!(!success(&PlannedKind::Delete, 500));
    }
}
