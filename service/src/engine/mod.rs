//! The data sync unit: jobs (one running backup per account at a time), the backup driver
//! ([`backup`]), change tracking ([`tracker`]) and the reports ([`report`]). It knows neither
//! D-Bus object paths nor platform stores: jobs publish [`JobEvent`]s that the D-Bus layer turns
//! into signals, and stores are reached through [`crate::sources`].

mod backup;
pub mod restore;
pub mod devinf;
pub mod negotiate;
pub mod pending;
pub mod report;
pub mod tracker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::class::DataClass;
use crate::profile::{ProfileError, Secrets, Store};
use crate::transport::{HttpTransport, Limits};
use report::{ErrorKind, JobReport, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("no account named '{0}'")]
    NoSuchAccount(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Transport(#[from] crate::transport::TransportError),
    #[error("{0}")]
    Session(syncml::session::SessionError),
    #[error("{0}")]
    Source(String),
    /// The platform service of a class is not on this phone (no modem, ...).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Profile(#[from] ProfileError),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("{0}")]
    MassDelete(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NotConfigured(_) | EngineError::NoSuchAccount(_) => ErrorKind::NotConfigured,
            EngineError::Network(_) => ErrorKind::Network,
            EngineError::Transport(t) => {
                use crate::transport::TransportError as T;
                match t {
                    T::CertExpired => ErrorKind::CertificateExpired,
                    T::CertWrongHost { .. } => ErrorKind::CertificateWrongHost,
                    T::CertUnknownCa => ErrorKind::CertificateUnknownCa,
                    T::CertPinMismatch { .. } => ErrorKind::CertificatePinMismatch,
                    T::Tls(_) => ErrorKind::Certificate,
                    _ => ErrorKind::Network,
                }
            }
            EngineError::Session(e) => session_error_kind(e),
            EngineError::Source(_) | EngineError::Unavailable(_) => ErrorKind::SourceUnavailable,
            EngineError::Profile(_) | EngineError::Internal(_) => ErrorKind::Internal,
            EngineError::Cancelled => ErrorKind::Cancelled,
            EngineError::MassDelete(_) => ErrorKind::MassDelete,
            EngineError::Busy(_) => ErrorKind::Internal,
        }
    }
}

fn session_error_kind(e: &syncml::session::SessionError) -> ErrorKind {
    use syncml::session::SessionError as S;
    match e {
        S::AuthenticationFailed { .. } => ErrorKind::AuthenticationFailed,
        _ => ErrorKind::ServerError,
    }
}

/// The local database URI of a class in SyncML (`./contacts`, ...).
pub(crate) fn local_uri(class: DataClass) -> String {
    format!("./{}", class.as_str())
}

/// A source error as the engine sees it: a missing platform service is "unavailable".
pub(crate) fn source_error(e: crate::sources::SourceError) -> EngineError {
    match e {
        crate::sources::SourceError::Unavailable { .. } => EngineError::Unavailable(e.to_string()),
        other => EngineError::Source(other.to_string()),
    }
}

/// Whether a class whose platform service is missing is skipped (a phone without a modem has
/// no SMS) rather than failed (a phone without evolution-data-server is broken).
pub(crate) fn skippable(class: DataClass) -> bool {
    matches!(class, DataClass::Sms)
}

/// What jobs tell the outside world.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Progress { job: u64, class: DataClass, done: u32, total: u32 },
    Finished { job: u64, report: JobReport },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Backup(BackupOptions),
    Restore(restore::RestoreMode),
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup(_) => "backup",
            JobKind::Restore(_) => "restore",
        }
    }
}

/// The user's confirmations for one backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupOptions {
    /// Go ahead even if the backup deletes more than half of a class's items on the server,
    /// or leaves fewer items there than the last good backup.
    pub allow_mass_delete: bool,
    /// Make the server's copy equal to the phone (refresh-from-client): items only the server
    /// holds are deleted there. Still guarded by `allow_mass_delete`.
    pub replace_server: bool,
}

/// A job as the outside sees it: identity, live state, the report once finished.
pub struct Job {
    pub id: u64,
    pub kind: JobKind,
    pub account: String,
    pub classes: Vec<DataClass>,
    cancel: Arc<AtomicBool>,
    status: Mutex<JobStatus>,
}

#[derive(Debug, Clone)]
struct JobStatus {
    state: Outcome,
    error: String,
    report: Option<JobReport>,
    finished_at: Option<Instant>,
}

impl Job {
    pub fn state(&self) -> Outcome {
        self.status.lock().unwrap().state
    }
    pub fn error(&self) -> String {
        self.status.lock().unwrap().error.clone()
    }
    pub fn report(&self) -> Option<JobReport> {
        self.status.lock().unwrap().report.clone()
    }
    pub fn finished_at(&self) -> Option<Instant> {
        self.status.lock().unwrap().finished_at
    }
    pub fn is_running(&self) -> bool {
        self.state() == Outcome::Running
    }
    /// Ask the job to stop at the next safe point (between messages). Returns false if it had
    /// already finished.
    pub fn cancel(&self) -> bool {
        if !self.is_running() {
            return false;
        }
        self.cancel.store(true, Ordering::SeqCst);
        true
    }
}

/// Progress reporting for one job.
pub struct ProgressSink {
    job: u64,
    tx: mpsc::UnboundedSender<JobEvent>,
}

impl ProgressSink {
    pub fn progress(&self, class: DataClass, done: u32, total: u32) {
        let _ = self.tx.send(JobEvent::Progress { job: self.job, class, done, total });
    }
}

pub struct JobContext {
    pub id: u64,
    cancel: Arc<AtomicBool>,
    pub observer: ProgressSink,
}

impl JobContext {
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub limits: Limits,
    /// The largest SyncML message we accept (announced to the server).
    pub max_msg_size: u32,
    pub max_obj_size: u32,
    /// A session still running after this long fails (no new message is sent).
    pub session_deadline: std::time::Duration,
    /// The service's state directory (for sources that keep files, e.g. the SMS restore ledger).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            limits: Limits::default(),
            max_msg_size: 512 * 1024,
            max_obj_size: 4 * 1024 * 1024,
            session_deadline: std::time::Duration::from_secs(3600),
            state_dir: None,
        }
    }
}

pub struct Engine {
    store: Arc<Mutex<Store>>,
    secrets: Arc<Secrets>,
    /// The service's own bus connection (Secret Service look-ups).
    bus: zbus::Connection,
    transport: Arc<HttpTransport>,
    options: EngineOptions,
    events: mpsc::UnboundedSender<JobEvent>,
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
    session_counter: AtomicU64,
}

impl Engine {
    pub fn new(
        store: Arc<Mutex<Store>>,
        secrets: Arc<Secrets>,
        bus: zbus::Connection,
        options: EngineOptions,
        events: mpsc::UnboundedSender<JobEvent>,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            store,
            secrets,
            bus,
            transport: Arc::new(HttpTransport::new(options.limits.clone())),
            options,
            events,
            jobs: Mutex::new(BTreeMap::new()),
            session_counter: AtomicU64::new(1),
        })
    }

    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, ProfileError>) -> Result<T, EngineError> {
        let mut guard = self.store.lock().map_err(|_| EngineError::Internal("state store lock poisoned".into()))?;
        Ok(f(&mut guard)?)
    }

    fn next_session_id(&self) -> u64 {
        self.session_counter.fetch_add(1, Ordering::SeqCst)
    }

    /// The account's password; `NotConfigured` if the account cannot reach a server.
    async fn password_for(&self, account: &crate::profile::Account) -> Result<Option<crate::profile::Password>, EngineError> {
        let name = account.name();
        if account.server_url.is_empty() {
            return Err(EngineError::NotConfigured(format!("account {name} has no server_url")));
        }
        let password = self.secrets.lookup(&self.bus, &name).await?;
        if !account.username.is_empty() && password.is_none() {
            return Err(EngineError::NotConfigured(format!("account {name} has a user name but no password")));
        }
        Ok(password)
    }

    /// SyncML credentials with the server's last nonce (md5; the session falls back to what
    /// the server challenges).
    fn credentials(
        &self,
        account: &crate::profile::Account,
        password: Option<crate::profile::Password>,
    ) -> Result<Option<syncml::session::Credentials>, EngineError> {
        let nonce = self.with_store(|s| s.server_nonce(&account.name()))?;
        Ok(password.map(|p| syncml::session::Credentials {
            username: account.username.clone(),
            password: p.expose().to_string(),
            auth: syncml::session::AuthType::Md5,
            nonce: nonce.and_then(|n| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, n).ok()),
        }))
    }

    /// Keep the server's next nonce for the next session.
    fn remember_nonce(&self, account: &str, sr: &syncml::session::SessionReport) -> Result<(), EngineError> {
        if let Some(n) = &sr.next_nonce {
            let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, n);
            self.with_store(|s| s.set_server_nonce(account, Some(&b64)))?;
        }
        Ok(())
    }

    /// Which DevInf a session with `account`'s server sends and asks for (see
    /// [`devinf::Exchange`]).
    fn devinf_exchange(
        &self,
        account: &crate::profile::Account,
        ours: syncml::DevInf,
        remote_uris: &[&str],
        use_cache: bool,
    ) -> Result<devinf::Exchange, EngineError> {
        let cache = self.with_store(|s| s.devinf_cache(&account.name()))?;
        Ok(devinf::Exchange::plan(ours, cache, &account.server_url, remote_uris, use_cache, crate::profile::store::now()))
    }

    /// Record what a session that ended well exchanged. Items the server refused as of an
    /// unsupported type (415) mean its DevInf as we know it may be out of date: forget it.
    fn remember_devinf(
        &self,
        account: &crate::profile::Account,
        exchange: &devinf::Exchange,
        sr: &syncml::session::SessionReport,
    ) -> Result<(), EngineError> {
        let name = account.name();
        if sr.stores.iter().any(|st| st.item_results.iter().any(|r| r.status == 415)) {
            return self.with_store(|s| s.forget_devinf(&name));
        }
        let (theirs, ours) = exchange.learned(sr);
        self.with_store(|s| s.remember_devinf(&name, &account.server_url, theirs.as_deref(), ours.as_ref().map(|d| d.as_slice())))
    }

    /// The encoding to start a session with: WBXML unless this server refused it before.
    fn encoding_for(&self, account: &str) -> Result<syncml::session::Encoding, EngineError> {
        Ok(match self.with_store(|s| s.server_encoding(account))?.as_deref() {
            Some("xml") => syncml::session::Encoding::Xml,
            _ => syncml::session::Encoding::Wbxml,
        })
    }

    fn remember_encoding(&self, account: &str, sr: &syncml::session::SessionReport) -> Result<(), EngineError> {
        if sr.encoding_fallback {
            tracing::info!(%account, "the server refused WBXML; using XML with it from now on");
            self.with_store(|s| s.set_server_encoding(account, "xml"))?;
        }
        Ok(())
    }

    /// The transport for one session with `account`'s server (its certificate pin, if any).
    fn transport_for(&self, account: &crate::profile::Account) -> Arc<HttpTransport> {
        let pin = (account.server_cert_sha256.len() == 64)
            .then(|| {
                let bytes: Vec<u8> = (0..32)
                    .filter_map(|i| u8::from_str_radix(&account.server_cert_sha256[2 * i..2 * i + 2], 16).ok())
                    .collect();
                <[u8; 32]>::try_from(bytes).ok()
            })
            .flatten();
        match pin {
            None => Arc::clone(&self.transport),
            Some(p) => Arc::new(HttpTransport::new(Limits { pinned_sha256: Some(p), ..self.options.limits.clone() })),
        }
    }

    /// One message exchange, on the blocking pool. The whole session must end by `deadline`.
    async fn post(
        &self,
        transport: &Arc<HttpTransport>,
        deadline: tokio::time::Instant,
        url: String,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<crate::transport::Response, EngineError> {
        if tokio::time::Instant::now() >= deadline {
            return Err(EngineError::Network(format!(
                "the session took longer than {} s; given up",
                self.options.session_deadline.as_secs()
            )));
        }
        let transport = Arc::clone(transport);
        Ok(tokio::task::spawn_blocking(move || transport.post(&url, content_type, &body))
            .await
            .map_err(|e| EngineError::Internal(format!("HTTP task: {e}")))??)
    }

    /// Jobs still known (running, or finished and kept for late readers).
    pub fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().unwrap().values().cloned().collect()
    }

    pub fn job(&self, id: u64) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap().get(&id).cloned()
    }

    pub fn running(&self) -> usize {
        self.jobs.lock().unwrap().values().filter(|j| j.is_running()).count()
    }

    /// Forget finished jobs older than `keep`; returns their ids.
    pub fn expire_jobs(&self, keep: std::time::Duration) -> Vec<u64> {
        let mut jobs = self.jobs.lock().unwrap();
        let old: Vec<u64> =
            jobs.values().filter(|j| j.finished_at().is_some_and(|t| t.elapsed() >= keep)).map(|j| j.id).collect();
        for id in &old {
            jobs.remove(id);
        }
        old
    }

    /// Create a job of `account` (default account if `None`) for `classes` (every enabled
    /// class if `None`). One job runs per account at a time: a backup asked for while a backup
    /// runs is that running job (`false` = not new); anything else while a job runs is `Busy`.
    /// The job starts with [`Engine::spawn`].
    pub fn create_job(
        &self,
        kind: JobKind,
        account: Option<&str>,
        classes: Option<Vec<DataClass>>,
    ) -> Result<(Arc<Job>, bool), EngineError> {
        let acc = match account {
            Some(name) => self.with_store(|s| s.account(name))?.ok_or_else(|| EngineError::NoSuchAccount(name.into()))?,
            None => self.with_store(|s| s.default_account())?.ok_or_else(|| {
                EngineError::NotConfigured("no account is set up yet: call SetAccount first".into())
            })?,
        };
        let name = acc.name();
        let mut jobs = self.jobs.lock().unwrap();
        if let Some(j) = jobs.values().find(|j| j.is_running() && j.account == name) {
            return match (j.kind, kind) {
                (JobKind::Backup(_), JobKind::Backup(_)) => Ok((Arc::clone(j), false)),
                _ => Err(EngineError::Busy(format!("a {} of {name} is running ({})", j.kind.as_str(), j.id))),
            };
        }
        let classes = match classes {
            Some(c) => c,
            None => DataClass::ALL.into_iter().filter(|c| acc.class(*c).enabled).collect(),
        };
        let id = self.with_store(|s| s.insert_job(&name, kind.as_str(), crate::profile::store::now()))?;
        let job = Arc::new(Job {
            id,
            kind,
            account: name,
            classes,
            cancel: Arc::new(AtomicBool::new(false)),
            status: Mutex::new(JobStatus { state: Outcome::Running, error: String::new(), report: None, finished_at: None }),
        });
        jobs.insert(id, Arc::clone(&job));
        Ok((job, true))
    }

    /// Run a created job in the background.
    pub fn spawn(self: &Arc<Self>, job: Arc<Job>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.run(job).await })
    }

    async fn run(self: Arc<Self>, job: Arc<Job>) {
        let ctx = JobContext {
            id: job.id,
            cancel: Arc::clone(&job.cancel),
            observer: ProgressSink { job: job.id, tx: self.events.clone() },
        };
        let started = crate::profile::store::now();
        let mut report = JobReport {
            account: job.account.clone(),
            kind: job.kind.as_str().into(),
            state: Outcome::Running,
            error: String::new(),
            started,
            finished: 0,
            classes: BTreeMap::new(),
            messages_sent: 0,
            bytes_sent: 0,
            bytes_received: 0,
        };
        tracing::info!(job = job.id, kind = job.kind.as_str(), account = %job.account, classes = ?job.classes, "job started");
        let account = self.with_store(|s| s.account(&job.account));
        let result = match account {
            Ok(Some(acc)) => match job.kind {
                JobKind::Backup(opts) => self.backup(&acc, &job.classes, &opts, &ctx, &mut report).await,
                JobKind::Restore(mode) => self.restore(&acc, &job.classes, mode, &ctx, &mut report).await,
            },
            Ok(None) => Err(EngineError::NoSuchAccount(job.account.clone())),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            report.error = format!("{}: {e}", e.kind().dbus_name());
            // classes that had not finished share the job's fate
            for class in &job.classes {
                report.classes.entry(class.to_string()).or_insert_with(|| {
                    let mut c = report::ClassReport::new("none");
                    c.fail(e.kind(), e.to_string());
                    c
                });
            }
        }
        report.finished = crate::profile::store::now();
        report.settle();
        if let Err(e) = &result {
            report.state = if matches!(e, EngineError::Cancelled) { Outcome::Cancelled } else { Outcome::Failed };
        }
        tracing::info!(job = job.id, kind = job.kind.as_str(), state = report.state.as_str(), error = %report.error, "job finished");
        let json = serde_json::to_value(&report).unwrap_or_default();
        if let Err(e) = self.with_store(|s| s.finish_job(job.id, report.state.as_str(), &report.error, &json)) {
            tracing::error!(job = job.id, error = %e, "cannot record the job in the history");
        }
        {
            let mut st = job.status.lock().unwrap();
            st.state = report.state;
            st.error = report.error.clone();
            st.report = Some(report.clone());
            st.finished_at = Some(Instant::now());
        }
        let _ = self.events.send(JobEvent::Finished { job: job.id, report });
    }

    /// Cancel every running job (shutdown).
    pub fn cancel_all(&self) {
        for j in self.jobs() {
            j.cancel();
        }
    }
}
