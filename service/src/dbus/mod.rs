//! The D-Bus face of the service, kept thin: argument conversion, access checks, object
//! lifetimes and signals. The work is done by [`crate::engine`] and [`crate::profile`].
//!
//! - `/org/imsync/Sync1`, interface `org.imsync.Sync1` ([`Sync1`]);
//! - `/org/imsync/Sync1/Job/N`, interface `org.imsync.Job1` ([`Job1`]), kept on the bus for
//!   a while after the job finished so that late subscribers can read the outcome.

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
use crate::profile::{Account, AccountUpdate, Password, Secrets, Store};
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
    async fn check_caller(&self, conn: &zbus::Connection, hdr: &Header<'_>) -> Result<(), Error> {
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

    fn store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, crate::profile::ProfileError>) -> Result<T, Error> {
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

impl Sync1 {
    /// Create (or find) a backup job and put its object on the bus before it starts.
    async fn start_backup(
        &self,
        server: &zbus::ObjectServer,
        emitter: &SignalEmitter<'_>,
        account: Option<&str>,
        classes: Option<Vec<DataClass>>,
        options: BackupOptions,
    ) -> Result<OwnedObjectPath, Error> {
        self.start_job(server, emitter, JobKind::Backup(options), account, classes).await
    }

    async fn start_job(
        &self,
        server: &zbus::ObjectServer,
        emitter: &SignalEmitter<'_>,
        kind: JobKind,
        account: Option<&str>,
        classes: Option<Vec<DataClass>>,
    ) -> Result<OwnedObjectPath, Error> {
        let (job, new) = self.shared.engine.create_job(kind, account, classes)?;
        let path = job_path(job.id);
        if new {
            server.at(&path, Job1 { job: Arc::clone(&job) }).await?;
            self.shared.engine.spawn(job);
            self.jobs_changed(emitter).await?;
        }
        Ok(path)
    }
}

#[zbus::interface(name = "org.imsync.Sync1")]
impl Sync1 {
    /// Create or update the account named by `protocol` + `im_id` (partial update; without
    /// those keys: the default account).
    async fn set_account(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        settings: Dict,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let update = AccountUpdate::parse(&convert::settings_from_dbus(&settings))?;
        let mut account = match update.account_name() {
            Some(name) => self.shared.store(|s| s.account(&name))?.unwrap_or_else(|| {
                Account::new(update.protocol.as_deref().unwrap_or_default(), update.im_id.as_deref().unwrap_or_default())
            }),
            None => self.shared.store(|s| s.default_account())?.ok_or_else(|| {
                Error::InvalidArgs("invalid value for 'protocol': no account exists yet; give 'protocol' and 'im_id'".into())
            })?,
        };
        let before = account.clone();
        account.apply(&update);
        let name = account.name();
        if let Some(pw) = &update.password {
            self.shared.secrets.store(conn, &name, &Password::new(pw.clone())).await?;
        }
        self.shared.store(|s| s.save_account(&account))?;
        if before.server_url != account.server_url || before.username != account.username || update.password.is_some() {
            tracing::info!(account = %name, server_url = %account.server_url, username = %account.username,
                password_changed = update.password.is_some(), "account credentials or server changed");
        } else {
            tracing::info!(account = %name, "account settings updated");
        }
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
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        self.start_backup(server, &emitter, None, None, BackupOptions::default()).await
    }

    /// `Backup` with options: `account` (s), `classes` (as), `allow_mass_delete` (b),
    /// `replace_server` (b).
    #[zbus(out_args("job"))]
    async fn backup_with(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
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
        self.start_backup(server, &emitter, account.as_deref(), classes, opts).await
    }

    /// Bring the server's items of `classes` (all enabled classes if empty) back onto the
    /// phone, merging with what it holds; returns the job at once.
    #[zbus(out_args("job"))]
    async fn restore(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        classes: Vec<String>,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let classes = if classes.is_empty() { None } else { Some(parse_classes("classes", &Value::from(classes))?) };
        self.start_job(server, &emitter, JobKind::Restore(RestoreMode::Merge), None, classes).await
    }

    /// `Restore` with options: `account` (s), `classes` (as), `mode` (s: `merge` (default) or
    /// `replace`: the phone's stores become the server's copy).
    #[zbus(out_args("job"))]
    async fn restore_with(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
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
        self.start_job(server, &emitter, JobKind::Restore(mode), account.as_deref(), classes).await
    }

    /// The newest `max` jobs, newest first.
    #[zbus(out_args("jobs"))]
    async fn get_history(&self, #[zbus(header)] hdr: Header<'_>, #[zbus(connection)] conn: &zbus::Connection, max: u32) -> Result<Vec<Dict>, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let jobs = self.shared.store(|s| s.history(max.min(10_000)))?;
        Ok(jobs.iter().map(convert::record_to_dbus).collect())
    }

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
    conn.object_server().at(OBJECT_PATH, Sync1 { shared: Arc::clone(&shared) }).await?;
    tokio::spawn(pump_events(conn.clone(), events));
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
                    s.jobs_changed(sync.signal_emitter()).await?;
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
