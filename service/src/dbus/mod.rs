//! The D-Bus face of the service, kept thin: argument conversion, access checks, object
//! lifetimes and signals. The work is done by [`crate::engine`] and [`crate::profile`].
//!
//! - `/org/imsync/Sync1`, interface `org.imsync.Sync1` ([`Sync1`]);
//! - `/org/imsync/Sync1/Job/N`, interface `org.imsync.Job1` ([`Job1`]), kept on the bus for
//!   a while after the job finished so that late subscribers can read the outcome;
//! - `/org/imsync/Sync1/Account/N`, interface `org.imsync.Account1` ([`account::Account1`]),
//!   one per IM account;
//! - `org.freedesktop.DBus.ObjectManager` on `/org/imsync/Sync1`, announcing accounts and jobs.

pub mod account;
pub mod client;
pub mod convert;
pub mod errors;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Value};

use crate::class::DataClass;
use crate::engine::restore::RestoreMode;
use crate::engine::{BackupOptions, Engine, Job, JobEvent, JobKind};
use crate::profile::{AccountUpdate, Secrets, SettingValue, Store};
use convert::Dict;
pub use errors::Error;

pub const BUS_NAME: &str = "org.imsync.Sync1";
pub const OBJECT_PATH: &str = "/org/imsync/Sync1";

pub fn job_path(id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{OBJECT_PATH}/Job/{id}")).expect("valid object path")
}

/// State shared by the bus objects.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub store: Arc<Mutex<Store>>,
    pub secrets: Arc<Secrets>,
    /// Unix time of the last method call (for the idle exit).
    pub last_activity: AtomicU64,
    uid: u32,
}

impl Shared {
    pub fn new(engine: Arc<Engine>, store: Arc<Mutex<Store>>, secrets: Arc<Secrets>) -> Arc<Self> {
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        Arc::new(Shared { engine, store, secrets, last_activity: AtomicU64::new(now_secs()), uid })
    }

    fn touch(&self) {
        self.last_activity.store(now_secs(), Ordering::SeqCst);
    }

    /// Only processes of our own Unix user may use the service.
    pub(crate) async fn check_caller(&self, conn: &zbus::Connection, hdr: &Header<'_>) -> Result<(), Error> {
        self.touch();
        let Some(sender) = hdr.sender() else { return Ok(()) }; // peer-to-peer: no bus
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let uid = dbus
            .get_connection_unix_user(sender.clone().into())
            .await
            .map_err(|e| Error::AccessDenied(format!("cannot identify the caller: {e}")))?;
        if uid != self.uid && uid != 0 {
            tracing::warn!(caller = %sender, caller_uid = uid, "refused a call from another user");
            return Err(Error::AccessDenied(format!("this service belongs to uid {}; caller is uid {uid}", self.uid)));
        }
        Ok(())
    }

    pub(crate) fn store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, crate::profile::ProfileError>) -> Result<T, Error> {
        let mut s = self.store.lock().map_err(|_| Error::Internal("state store lock poisoned".into()))?;
        Ok(f(&mut s)?)
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub struct Sync1 {
    shared: Arc<Shared>,
}

fn parse_classes(key: &str, v: &Value<'_>) -> Result<Vec<DataClass>, Error> {
    let arr: Vec<String> = Vec::<String>::try_from(v.try_clone().map_err(|e| Error::InvalidArgs(e.to_string()))?)
        .map_err(|_| Error::InvalidArgs(format!("invalid value for '{key}': expected an array of strings (as)")))?;
    let mut out = Vec::new();
    for c in arr {
        let class: DataClass = c.parse().map_err(|e: String| Error::InvalidArgs(format!("invalid value for '{key}': {e}")))?;
        if !out.contains(&class) {
            out.push(class);
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidArgs(format!("invalid value for '{key}': no class given")));
    }
    Ok(out)
}

/// Create (or find) a job and put its object on the bus before it starts.
pub(crate) async fn start_job(
    shared: &Shared,
    server: &zbus::ObjectServer,
    kind: JobKind,
    account: Option<&str>,
    classes: Option<Vec<DataClass>>,
) -> Result<OwnedObjectPath, Error> {
    let (job, new) = shared.engine.create_job(kind, account, classes)?;
    let path = job_path(job.id);
    if new {
        server.at(&path, Job1 { job: Arc::clone(&job) }).await?;
        shared.engine.spawn(job);
        let sync = server.interface::<_, Sync1>(OBJECT_PATH).await?;
        sync.get().await.jobs_changed(sync.signal_emitter()).await?;
    }
    Ok(path)
}

impl Sync1 {
    async fn start_backup(
        &self,
        server: &zbus::ObjectServer,
        account: Option<&str>,
        classes: Option<Vec<DataClass>>,
        options: BackupOptions,
    ) -> Result<OwnedObjectPath, Error> {
        start_job(&self.shared, server, JobKind::Backup(options), account, classes).await
    }

    async fn start_job(
        &self,
        server: &zbus::ObjectServer,
        kind: JobKind,
        account: Option<&str>,
        classes: Option<Vec<DataClass>>,
    ) -> Result<OwnedObjectPath, Error> {
        start_job(&self.shared, server, kind, account, classes).await
    }

    /// `account` of the roster and provisioning methods: `<protocol>:<im_id>` of an existing
    /// account, or empty for the default account.
    fn existing_account(&self, account: &str) -> Result<String, Error> {
        if account.is_empty() {
            return Ok(self
                .shared
                .store(|s| s.default_account())?
                .ok_or_else(|| Error::NotConfigured("no account is set up yet: call SetAccount first".into()))?
                .name());
        }
        match self.shared.store(|s| s.account(account))? {
            Some(a) => Ok(a.name()),
            None => Err(Error::NoSuchAccount(format!("no account named '{account}'"))),
        }
    }

    async fn import_provisioning_impl(
        &self,
        conn: &zbus::Connection,
        server: &zbus::ObjectServer,
        account: &str,
        document: &str,
        options: HashMap<String, SettingValue>,
    ) -> Result<(), Error> {
        // the account named, or the default one; created if it does not exist
        let (protocol, im_id) = if account.is_empty() {
            let a = self
                .shared
                .store(|s| s.default_account())?
                .ok_or_else(|| Error::NotConfigured("no account is set up yet: name the account to provision".into()))?;
            (a.protocol, a.im_id)
        } else {
            crate::profile::settings::parse_account_name(account)?
        };
        let prov = crate::profile::provisioning::parse(document).map_err(|e| Error::InvalidProvisioning(e.to_string()))?;
        let mut settings = prov.settings();
        settings.insert("protocol".into(), SettingValue::Str(protocol));
        settings.insert("im_id".into(), SettingValue::Str(im_id));
        settings.extend(options);
        let update = AccountUpdate::parse(&settings)?;
        let saved = account::save_account(&self.shared, conn, server, None, update).await?;
        tracing::info!(
            account = %saved.name, created = saved.created, profile = ?prov.profile_name, server_url = %prov.server_url,
            classes = ?prov.resources.iter().map(|r| format!("{}={}", r.class, r.uri)).collect::<Vec<_>>(),
            credentials = prov.username.is_some(), auto_backup_job = ?saved.job.as_ref().map(|j| j.as_str()),
            "account provisioned from an OMA CP document"
        );
        Ok(())
    }
}

#[zbus::interface(name = "org.imsync.Sync1")]
impl Sync1 {
    /// Create or update the account named by `protocol` + `im_id` (partial update; without
    /// those keys: the default account). `is_default` (b) true makes it the default account;
    /// `auto_backup` (b) true backs a newly created account up right away.
    async fn set_account(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        settings: Dict,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let update = AccountUpdate::parse(&convert::settings_from_dbus(&settings))?;
        account::save_account(&self.shared, conn, server, None, update).await?;
        Ok(())
    }

    /// The default account's settings; never the password (`has_password` instead).
    #[zbus(out_args("settings"))]
    async fn get_account(&self, #[zbus(header)] hdr: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<Dict, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let account = self
            .shared
            .store(|s| s.default_account())?
            .ok_or_else(|| Error::NotConfigured("no account is set up yet: call SetAccount first".into()))?;
        let has_password = self.shared.secrets.lookup(conn, &account.name()).await?.is_some();
        Ok(convert::account_to_dbus(&account, has_password))
    }

    /// Back up every enabled class of the default account; returns the job at once.
    #[zbus(out_args("job"))]
    async fn backup(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        self.start_backup(server, None, None, BackupOptions::default()).await
    }

    /// `Backup` with options: `account` (s), `classes` (as), `allow_mass_delete` (b),
    /// `replace_server` (b).
    #[zbus(out_args("job"))]
    async fn backup_with(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        options: Dict,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let mut account = None;
        let mut classes = None;
        let mut opts = BackupOptions::default();
        let flag = |k: &str, v: &Value<'_>| match v {
            Value::Bool(b) => Ok(*b),
            _ => Err(Error::InvalidArgs(format!("invalid value for '{k}': expected a boolean (b)"))),
        };
        for (k, v) in &options {
            match k.as_str() {
                "account" => match &**v {
                    Value::Str(s) => account = Some(s.as_str().to_string()),
                    _ => return Err(Error::InvalidArgs("invalid value for 'account': expected a string (s)".into())),
                },
                "classes" => classes = Some(parse_classes(k, v)?),
                "allow_mass_delete" => opts.allow_mass_delete = flag(k, v)?,
                "replace_server" => opts.replace_server = flag(k, v)?,
                _ => return Err(Error::InvalidArgs(format!("invalid value for '{k}': unknown option"))),
            }
        }
        self.start_backup(server, account.as_deref(), classes, opts).await
    }

    /// Bring the server's items of `classes` (all enabled classes if empty) back onto the
    /// phone, merging with what it holds; returns the job at once.
    #[zbus(out_args("job"))]
    async fn restore(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        classes: Vec<String>,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let classes = if classes.is_empty() { None } else { Some(parse_classes("classes", &Value::from(classes))?) };
        self.start_job(server, JobKind::Restore(RestoreMode::Merge), None, classes).await
    }

    /// `Restore` with options: `account` (s), `classes` (as), `mode` (s: `merge` (default) or
    /// `replace`: the phone's stores become the server's copy).
    #[zbus(out_args("job"))]
    async fn restore_with(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        options: Dict,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let mut account = None;
        let mut classes = None;
        let mut mode = RestoreMode::Merge;
        for (k, v) in &options {
            match (k.as_str(), &**v) {
                ("account", Value::Str(s)) => account = Some(s.as_str().to_string()),
                ("classes", v) => classes = Some(parse_classes(k, v)?),
                ("mode", Value::Str(s)) => {
                    mode = s.as_str().parse().map_err(|e: String| Error::InvalidArgs(format!("invalid value for 'mode': {e}")))?
                }
                ("account" | "mode", _) => {
                    return Err(Error::InvalidArgs(format!("invalid value for '{k}': expected a string (s)")))
                }
                _ => return Err(Error::InvalidArgs(format!("invalid value for '{k}': unknown option"))),
            }
        }
        self.start_job(server, JobKind::Restore(mode), account.as_deref(), classes).await
    }

    /// The newest `max` jobs, newest first.
    #[zbus(out_args("jobs"))]
    async fn get_history(&self, #[zbus(header)] hdr: Header<'_>, #[zbus(connection)] conn: &zbus::Connection, max: u32) -> Result<Vec<Dict>, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let jobs = self.shared.store(|s| s.history(max.min(10_000)))?;
        Ok(jobs.iter().map(convert::record_to_dbus).collect())
    }

    /// The object paths of every account (`/org/imsync/Sync1/Account/N`, interface
    /// `org.imsync.Account1`), oldest first. The same objects are announced through
    /// `org.freedesktop.DBus.ObjectManager` on `/org/imsync/Sync1`.
    #[zbus(out_args("accounts"))]
    async fn list_accounts(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        Ok(self.shared.store(|s| s.accounts_with_ids())?.into_iter().map(|(id, _)| account::account_path(id)).collect())
    }

    /// Replace the friend list of `account` (empty: the default account) with `entries`:
    /// `im_id` s (required, unique), `name` s, `groups` as, `subscription` s (`none`, `to`,
    /// `from`, `both`). Backed up as the `roster` class.
    async fn set_roster(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        account: &str,
        entries: Vec<Dict>,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let name = self.existing_account(account)?;
        account::set_roster(&self.shared, &name, &entries)
    }

    /// The friend list of `account` (empty: the default account), ordered by IM id.
    #[zbus(out_args("entries"))]
    async fn get_roster(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        account: &str,
    ) -> Result<Vec<Dict>, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let name = self.existing_account(account)?;
        account::roster_to_dbus(&self.shared, &name)
    }

    /// Create or update the sync settings of `account` (`<protocol>:<im_id>`, created if it does
    /// not exist; empty: the default account) from an OMA Client Provisioning document (XML,
    /// APPLICATION with APPID w5). A document that cannot be used changes nothing and gives
    /// `org.imsync.Error.InvalidProvisioning` naming the problem.
    async fn import_provisioning(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        account: &str,
        document: &str,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        self.import_provisioning_impl(conn, server, account, document, HashMap::new()).await
    }

    /// `ImportProvisioning` with options: `auto_backup` (b), `display_name` (s), `is_default` (b).
    async fn import_provisioning_with(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        account: &str,
        document: &str,
        options: Dict,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let options = account::provisioning_options(&options)?;
        self.import_provisioning_impl(conn, server, account, document, options).await
    }

    /// The server URL or the credentials (user name, password, certificate pin) of an existing
    /// account changed. Nothing is sent to the new server before the next explicit backup.
    #[zbus(signal)]
    async fn account_changed(emitter: &SignalEmitter<'_>, account: &str) -> zbus::Result<()>;

    /// A restore brought the friend list (and the account's display name) of `account` back.
    #[zbus(signal)]
    async fn roster_restored(emitter: &SignalEmitter<'_>, account: &str) -> zbus::Result<()>;

    /// Running and recently finished jobs.
    #[zbus(property)]
    async fn jobs(&self) -> Vec<OwnedObjectPath> {
        self.shared.engine.jobs().iter().map(|j| job_path(j.id)).collect()
    }

    /// The last finished backup: `time`, `state`, `error` and per class counts (`classes`).
    #[zbus(property)]
    async fn last_backup(&self) -> Dict {
        match self.shared.store(|s| s.last_backup()) {
            Ok(Some(j)) => convert::record_to_dbus(&j),
            _ => HashMap::new(),
        }
    }

    /// Per enabled class of the default account: changes on the phone since the last good
    /// backup (0 = nothing to back up). Read from the stores' revisions, no item is read.
    /// Invalidated (PropertiesChanged) when an EDS store changes and after every job.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn pending_changes(&self) -> HashMap<String, u32> {
        match self.shared.engine.pending_changes().await {
            Ok(m) => m.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute the pending changes");
                HashMap::new()
            }
        }
    }
}

/// Invalidate `PendingChanges` whenever an EDS address book or calendar reports a new Revision
/// (EDS broadcasts PropertiesChanged on every change, by any client). Bursts are coalesced.
async fn watch_phone_stores(conn: zbus::Connection) {
    use futures_util::{FutureExt, StreamExt};
    let mut streams = Vec::new();
    for iface in ["org.gnome.evolution.dataserver.AddressBook", "org.gnome.evolution.dataserver.Calendar"] {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus.Properties")
            .and_then(|b| b.member("PropertiesChanged"))
            .and_then(|b| b.arg(0, iface))
            .map(|b| b.build());
        match rule {
            Ok(rule) => match zbus::MessageStream::for_match_rule(rule, &conn, Some(64)).await {
                Ok(s) => streams.push(s),
                Err(e) => tracing::warn!(error = %e, "cannot watch EDS for changes"),
            },
            Err(e) => tracing::warn!(error = %e, "bad match rule"),
        }
    }
    let mut all = futures_util::stream::select_all(streams);
    while all.next().await.is_some() {
        // coalesce a burst of changes
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(Some(_)) = all.next().now_or_never() {}
        if let Ok(sync) = conn.object_server().interface::<_, Sync1>(OBJECT_PATH).await {
            let _ = sync.get().await.pending_changes_invalidate(sync.signal_emitter()).await;
        }
    }
}

pub struct Job1 {
    job: Arc<Job>,
}

#[zbus::interface(name = "org.imsync.Job1")]
impl Job1 {
    #[zbus(property)]
    async fn kind(&self) -> String {
        self.job.kind.as_str().to_string()
    }

    /// running, succeeded, partial, failed or cancelled.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.job.state().as_str().to_string()
    }

    /// `<org.imsync.Error.*>: <message>`, empty while running or on success.
    #[zbus(property)]
    async fn error(&self) -> String {
        self.job.error()
    }

    /// The report (as in `Finished`), empty while running.
    #[zbus(property)]
    async fn report(&self) -> Dict {
        self.job.report().map(|r| convert::report_to_dbus(&r, Some(self.job.id))).unwrap_or_default()
    }

    #[zbus(property)]
    async fn account(&self) -> String {
        self.job.account.clone()
    }

    /// Stop the job at the next safe point; nothing it did not finish is recorded.
    async fn cancel(&self) -> Result<(), Error> {
        if self.job.cancel() {
            tracing::info!(job = self.job.id, "cancel requested");
            Ok(())
        } else {
            Err(Error::NotRunning(format!("job {} already finished ({})", self.job.id, self.job.state().as_str())))
        }
    }

    #[zbus(signal)]
    async fn progress(emitter: &SignalEmitter<'_>, class: &str, done: u32, total: u32) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn finished(emitter: &SignalEmitter<'_>, state: &str, report: Dict) -> zbus::Result<()>;
}

/// Put the service on the bus and turn job events into signals. Returns when the name is ours.
pub async fn serve(conn: &zbus::Connection, shared: Arc<Shared>, events: mpsc::UnboundedReceiver<JobEvent>) -> zbus::Result<()> {
    let server = conn.object_server();
    server.at(OBJECT_PATH, Sync1 { shared: Arc::clone(&shared) }).await?;
    account::export_all(&shared, server).await.map_err(|e| zbus::Error::Failure(format!("cannot export the accounts: {e}")))?;
    server.at(OBJECT_PATH, zbus::fdo::ObjectManager).await?;
    tokio::spawn(pump_events(conn.clone(), events));
    tokio::spawn(watch_phone_stores(conn.clone()));
    conn.request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into()).await?;
    Ok(())
}

async fn pump_events(conn: zbus::Connection, mut events: mpsc::UnboundedReceiver<JobEvent>) {
    let server = conn.object_server();
    while let Some(ev) = events.recv().await {
        let result: zbus::Result<()> = async {
            match ev {
                JobEvent::Progress { job, class, done, total } => {
                    let iface = server.interface::<_, Job1>(job_path(job)).await?;
                    Job1::progress(iface.signal_emitter(), class.as_str(), done, total).await?;
                }
                JobEvent::Finished { job, report } => {
                    let iface = server.interface::<_, Job1>(job_path(job)).await?;
                    let job_ref = iface.get().await;
                    job_ref.state_changed(iface.signal_emitter()).await?;
                    job_ref.error_changed(iface.signal_emitter()).await?;
                    job_ref.report_changed(iface.signal_emitter()).await?;
                    drop(job_ref);
                    Job1::finished(iface.signal_emitter(), report.state.as_str(), convert::report_to_dbus(&report, Some(job)))
                        .await?;
                    let sync = server.interface::<_, Sync1>(OBJECT_PATH).await?;
                    let s = sync.get().await;
                    s.last_backup_changed(sync.signal_emitter()).await?;
                    s.pending_changes_invalidate(sync.signal_emitter()).await?;
                    s.jobs_changed(sync.signal_emitter()).await?;
                    // a restore that wrote the friend list: tell the chat app
                    let roster_written = report.classes.get(DataClass::Roster.as_str()).is_some_and(|c| {
                        matches!(c.state, crate::engine::report::Outcome::Succeeded | crate::engine::report::Outcome::Partial)
                    });
                    if report.kind == "restore" && roster_written {
                        tracing::info!(account = %report.account, job, "roster restored");
                        Sync1::roster_restored(sync.signal_emitter(), &report.account).await?;
                        if let Ok(Some(id)) = s.shared.store(|st| st.account_id(&report.account)) {
                            account::emit_display_name(server, id).await;
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot emit a job signal");
        }
    }
}

/// Take finished jobs older than `keep` off the bus.
pub async fn expire_jobs(conn: &zbus::Connection, engine: &Engine, keep: Duration) {
    let gone = engine.expire_jobs(keep);
    if gone.is_empty() {
        return;
    }
    let server = conn.object_server();
    for id in &gone {
        let _ = server.remove::<Job1, _>(job_path(*id)).await;
    }
    if let Ok(sync) = server.interface::<_, Sync1>(OBJECT_PATH).await {
        let _ = sync.get().await.jobs_changed(sync.signal_emitter()).await;
    }
    tracing::debug!(jobs = ?gone, "finished jobs taken off the bus");
}
