//! Test-side client of imsyncd's D-Bus API (`org.imsync.Sync1`,
//! `org.imsync.Job1`): account settings, backups, waiting for jobs, reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::daemon::{SYNC1_NAME, SYNC1_PATH};
use crate::Result;

pub const SYNC1_IFACE: &str = "org.imsync.Sync1";
pub const JOB1_IFACE: &str = "org.imsync.Job1";

/// The data classes of the account settings.
pub const CLASSES: &[&str] = &["contacts", "calendar", "tasks", "notes", "sms", "roster"];
/// Sync mode the tests use for contacts.
pub const CONTACTS_MODE: &str = "two-way";
/// Final job states.
pub const FINAL_STATES: &[&str] = &["succeeded", "partial", "failed", "cancelled"];

/// `a{sv}` as sent to SetAccount / BackupWith.
pub type Dict = HashMap<String, OwnedValue>;

pub fn s(v: &str) -> OwnedValue {
    OwnedValue::from(zbus::zvariant::Str::from(v.to_string()))
}

pub fn b(v: bool) -> OwnedValue {
    OwnedValue::from(v)
}

/// Account settings that back up only contacts to `server_url`.
pub fn contacts_account(server_url: &str, username: &str, password: &str) -> Dict {
    let mut d = Dict::new();
    d.insert("protocol".into(), s("xmpp"));
    d.insert("im_id".into(), s("alice@example.org"));
    d.insert("display_name".into(), s("Alice (imsync tests)"));
    d.insert("server_url".into(), s(server_url));
    d.insert("username".into(), s(username));
    d.insert("password".into(), s(password));
    for c in CLASSES {
        d.insert(format!("{c}.enabled"), b(*c == "contacts"));
    }
    d.insert("contacts.uri".into(), s("contacts"));
    d.insert("contacts.mode".into(), s(CONTACTS_MODE));
    d
}

/// Account settings with exactly `classes` enabled (each in its default
/// database `C.uri` = C, mode one-way-from-client, contacts two-way).
pub fn classes_account(server_url: &str, username: &str, password: &str, classes: &[&str]) -> Dict {
    let mut d = contacts_account(server_url, username, password);
    for c in CLASSES {
        d.insert(format!("{c}.enabled"), b(classes.contains(c)));
    }
    for c in classes {
        d.insert(format!("{c}.uri"), s(c));
    }
    d
}

/// `as` for BackupWith / RestoreWith options.
pub fn strings(v: &[&str]) -> OwnedValue {
    OwnedValue::try_from(Value::from(v.iter().map(|x| x.to_string()).collect::<Vec<String>>())).expect("as")
}

/// Convert a D-Bus value into JSON (for reports, debugging and comparisons).
pub fn to_json(v: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::U8(x) => J::from(*x),
        Value::Bool(x) => J::from(*x),
        Value::I16(x) => J::from(*x),
        Value::U16(x) => J::from(*x),
        Value::I32(x) => J::from(*x),
        Value::U32(x) => J::from(*x),
        Value::I64(x) => J::from(*x),
        Value::U64(x) => J::from(*x),
        Value::F64(x) => J::from(*x),
        Value::Str(x) => J::from(x.as_str()),
        Value::Signature(x) => J::from(x.to_string()),
        Value::ObjectPath(x) => J::from(x.as_str()),
        Value::Value(x) => to_json(x),
        Value::Array(a) => J::Array(a.inner().iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        J::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Structure(s) => J::Array(s.fields().iter().map(to_json).collect()),
        other => J::from(format!("{other:?}")),
    }
}

pub fn dict_to_json(d: &HashMap<String, OwnedValue>) -> serde_json::Value {
    serde_json::Value::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

/// Per-class part of a job report.
#[derive(Clone, Debug, Default)]
pub struct ClassReport {
    pub mode: String,
    pub added: u64,
    pub replaced: u64,
    pub deleted: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    /// D-Bus error name, empty if none.
    pub error: String,
    pub server_other_items: u64,
    pub raw: serde_json::Value,
}

/// A job report (`Finished`'s `a{sv}`).
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub classes: BTreeMap<String, ClassReport>,
    pub raw: serde_json::Value,
}

impl Report {
    pub fn from_json(raw: serde_json::Value) -> Report {
        let mut classes = BTreeMap::new();
        if let Some(obj) = raw.get("classes").and_then(|c| c.as_object()) {
            for (name, c) in obj {
                let u = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                let st = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                classes.insert(
                    name.clone(),
                    ClassReport {
                        mode: st("mode"),
                        added: u("added"),
                        replaced: u("replaced"),
                        deleted: u("deleted"),
                        failed: u("failed"),
                        errors: c
                            .get("errors")
                            .and_then(|e| e.as_array())
                            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                            .unwrap_or_default(),
                        error: st("error"),
                        server_other_items: u("server_other_items"),
                        raw: c.clone(),
                    },
                );
            }
        }
        Report { classes, raw }
    }

    /// The report of a class; panics with the whole report if missing.
    pub fn class(&self, name: &str) -> &ClassReport {
        self.classes.get(name).unwrap_or_else(|| panic!("report has no class {name:?}: {:#}", self.raw))
    }
}

/// The outcome of a job.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    pub path: String,
    pub state: String,
    /// The job's `Error` property.
    pub error: String,
    pub report: Report,
    /// Progress signals seen: (class, done, total).
    pub progress: Vec<(String, u32, u32)>,
    /// Whether the report came from the Finished signal (else from LastBackup).
    pub report_from_signal: bool,
    pub duration: Duration,
}

impl JobOutcome {
    /// One line about the job and its `class` (for test tables and assertion messages):
    /// state, error, the class's mode, counts and error, and how long the job took.
    pub fn summary(&self, class: &str) -> String {
        let c = self.report.classes.get(class);
        format!(
            "{} error {:?} ({class}: mode {:?} +{} ~{} -{} failed {} {:?}) in {:.1}s",
            self.state,
            self.error,
            c.map(|c| c.mode.as_str()).unwrap_or(""),
            c.map_or(0, |c| c.added),
            c.map_or(0, |c| c.replaced),
            c.map_or(0, |c| c.deleted),
            c.map_or(0, |c| c.failed),
            c.map(|c| c.error.as_str()).unwrap_or(""),
            self.duration.as_secs_f64()
        )
    }
}

#[derive(Clone, Debug)]
struct JobSignal {
    path: String,
    member: String,
    body: serde_json::Value,
}

/// Collects every `org.imsync.Job1` signal on a connection from the moment
/// it is created (create it BEFORE calling Backup, so nothing is missed).
pub struct JobWatcher {
    seen: Arc<Mutex<Vec<JobSignal>>>,
    notify: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl JobWatcher {
    pub async fn new(conn: &zbus::Connection) -> Result<JobWatcher> {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(JOB1_IFACE)?
            .build();
        let mut stream = zbus::MessageStream::for_match_rule(rule, conn, Some(1024)).await?;
        let seen: Arc<Mutex<Vec<JobSignal>>> = Arc::default();
        let notify = Arc::new(tokio::sync::Notify::new());
        let (s2, n2) = (seen.clone(), notify.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let h = msg.header();
                let path = h.path().map(|p| p.to_string()).unwrap_or_default();
                let member = h.member().map(|m| m.to_string()).unwrap_or_default();
                let body = match member.as_str() {
                    "Progress" => msg
                        .body()
                        .deserialize::<(String, u32, u32)>()
                        .map(|(c, d, t)| serde_json::json!([c, d, t]))
                        .unwrap_or(serde_json::Value::Null),
                    "Finished" => msg
                        .body()
                        .deserialize::<(String, HashMap<String, OwnedValue>)>()
                        .map(|(st, rep)| serde_json::json!([st, dict_to_json(&rep)]))
                        .unwrap_or_else(|e| serde_json::json!(["?", {"deserialize_error": e.to_string()}])),
                    _ => serde_json::Value::Null,
                };
                s2.lock().unwrap().push(JobSignal { path, member, body });
                n2.notify_waiters();
            }
        });
        Ok(JobWatcher { seen, notify, task })
    }

    fn finished(&self, path: &str) -> Option<(String, serde_json::Value)> {
        self.seen.lock().unwrap().iter().find(|s| s.path == path && s.member == "Finished").map(|s| {
            (s.body[0].as_str().unwrap_or("").to_string(), s.body[1].clone())
        })
    }

    fn progress(&self, path: &str) -> Vec<(String, u32, u32)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path && s.member == "Progress")
            .filter_map(|s| {
                Some((s.body[0].as_str()?.to_string(), s.body[1].as_u64()? as u32, s.body[2].as_u64()? as u32))
            })
            .collect()
    }

    /// Paths of all jobs that sent a signal so far.
    pub fn job_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect();
        v.dedup();
        v
    }
}

impl Drop for JobWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Proxy-based client for `org.imsync.Sync1` on one connection.
pub struct Sync1 {
    conn: zbus::Connection,
    proxy: zbus::Proxy<'static>,
}

impl Sync1 {
    pub async fn new(conn: &zbus::Connection) -> Result<Sync1> {
        let proxy = zbus::proxy::Builder::<zbus::Proxy>::new(conn)
            .destination(SYNC1_NAME)?
            .path(SYNC1_PATH)?
            .interface(SYNC1_IFACE)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Sync1 { conn: conn.clone(), proxy })
    }

    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    pub fn proxy(&self) -> &zbus::Proxy<'static> {
        &self.proxy
    }

    /// SetAccount; returns the raw zbus error so tests can check its name.
    pub async fn set_account(&self, settings: &Dict) -> std::result::Result<(), zbus::Error> {
        let d: HashMap<&str, &Value> = settings.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
        self.proxy.call::<_, _, ()>("SetAccount", &(d,)).await
    }

    /// SetAccount with arbitrary values (e.g. wrong types).
    pub async fn set_account_values(&self, settings: HashMap<&str, Value<'_>>) -> std::result::Result<(), zbus::Error> {
        self.proxy.call::<_, _, ()>("SetAccount", &(settings,)).await
    }

    pub async fn get_account(&self) -> Result<HashMap<String, OwnedValue>> {
        Ok(self.proxy.call("GetAccount", &()).await?)
    }

    pub async fn get_account_json(&self) -> Result<serde_json::Value> {
        Ok(dict_to_json(&self.get_account().await?))
    }

    pub async fn backup(&self) -> std::result::Result<OwnedObjectPath, zbus::Error> {
        self.proxy.call("Backup", &()).await
    }

    pub async fn backup_with(&self, opts: &Dict) -> std::result::Result<OwnedObjectPath, zbus::Error> {
        let d: HashMap<&str, &Value> = opts.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
        self.proxy.call("BackupWith", &(d,)).await
    }

    pub async fn jobs(&self) -> Result<Vec<OwnedObjectPath>> {
        Ok(self.proxy.get_property("Jobs").await?)
    }

    pub async fn last_backup(&self) -> Result<serde_json::Value> {
        let d: HashMap<String, OwnedValue> = self.proxy.get_property("LastBackup").await?;
        Ok(dict_to_json(&d))
    }

    pub async fn history(&self, n: u32) -> Result<Vec<serde_json::Value>> {
        let v: Vec<HashMap<String, OwnedValue>> = self.proxy.call("GetHistory", &(n,)).await?;
        Ok(v.iter().map(dict_to_json).collect())
    }

    /// A proxy for a job object.
    pub async fn job(&self, path: &str) -> Result<zbus::Proxy<'static>> {
        Ok(zbus::proxy::Builder::<zbus::Proxy>::new(&self.conn)
            .destination(SYNC1_NAME)?
            .path(path.to_string())?
            .interface(JOB1_IFACE)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// Wait until job `path` is finished: by its Finished signal (seen by
    /// `watcher`, which must have been created before the job started), or
    /// by its `State` property (then the report comes from LastBackup).
    pub async fn wait_job(&self, watcher: &JobWatcher, path: &str, within: Duration) -> Result<JobOutcome> {
        let t0 = Instant::now();
        let job = self.job(path).await?;
        let mut final_seen_at: Option<Instant> = None;
        loop {
            let notified = watcher.notify.notified();
            if let Some((state, report)) = watcher.finished(path) {
                let error: String = job.get_property("Error").await.unwrap_or_default();
                return Ok(JobOutcome {
                    path: path.to_string(),
                    state,
                    error,
                    report: Report::from_json(report),
                    progress: watcher.progress(path),
                    report_from_signal: true,
                    duration: t0.elapsed(),
                });
            }
            // the job may have finished before we looked; or its object may be gone
            match job.get_property::<String>("State").await {
                Ok(state) if FINAL_STATES.contains(&state.as_str()) => {
                    // give the Finished signal a moment to arrive
                    let at = *final_seen_at.get_or_insert_with(Instant::now);
                    if at.elapsed() > Duration::from_secs(3) {
                        let error: String = job.get_property("Error").await.unwrap_or_default();
                        let last = self.last_backup().await.unwrap_or(serde_json::Value::Null);
                        return Ok(JobOutcome {
                            path: path.to_string(),
                            state,
                            error,
                            report: Report::from_json(last.get("report").cloned().unwrap_or(last)),
                            progress: watcher.progress(path),
                            report_from_signal: false,
                            duration: t0.elapsed(),
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if t0.elapsed() > Duration::from_secs(5) && final_seen_at.is_none() {
                        // no such object and no signal: report it (after a grace period)
                        final_seen_at = Some(Instant::now());
                        eprintln!("harness: reading State of {path} failed: {e}");
                    }
                }
            }
            if t0.elapsed() > within {
                return Err(format!("job {path} not finished within {within:?}").into());
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        }
    }

    /// Restore(classes) (empty: every enabled class).
    pub async fn restore(&self, classes: &[&str]) -> std::result::Result<OwnedObjectPath, zbus::Error> {
        self.proxy.call("Restore", &(classes,)).await
    }

    pub async fn restore_with(&self, opts: &Dict) -> std::result::Result<OwnedObjectPath, zbus::Error> {
        let d: HashMap<&str, &Value> = opts.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
        self.proxy.call("RestoreWith", &(d,)).await
    }

    /// Restore(classes) and wait for the job.
    pub async fn run_restore(&self, classes: &[&str], within: Duration) -> Result<JobOutcome> {
        let watcher = JobWatcher::new(&self.conn).await?;
        let path = self.restore(classes).await?;
        self.wait_job(&watcher, path.as_str(), within).await
    }

    /// RestoreWith(opts) and wait for the job.
    pub async fn run_restore_with(&self, opts: &Dict, within: Duration) -> Result<JobOutcome> {
        let watcher = JobWatcher::new(&self.conn).await?;
        let path = self.restore_with(opts).await?;
        self.wait_job(&watcher, path.as_str(), within).await
    }

    /// BackupWith(opts) and wait for the job.
    pub async fn run_backup_with(&self, opts: &Dict, within: Duration) -> Result<JobOutcome> {
        let watcher = JobWatcher::new(&self.conn).await?;
        let path = self.backup_with(opts).await?;
        self.wait_job(&watcher, path.as_str(), within).await
    }

    /// Backup() and wait for the job.
    pub async fn run_backup(&self, within: Duration) -> Result<JobOutcome> {
        let watcher = JobWatcher::new(&self.conn).await?;
        let path = self.backup().await?;
        self.wait_job(&watcher, path.as_str(), within).await
    }
}

/// Name of a D-Bus error returned by a method call, if it is one.
pub fn error_name(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(fdo) => Some(format!("org.freedesktop.DBus.Error.{}", fdo_name(fdo))),
        _ => None,
    }
}

fn fdo_name(e: &zbus::fdo::Error) -> String {
    let dbg = format!("{e:?}");
    dbg.split('(').next().unwrap_or("").to_string()
}

/// Error message (text after the name) of a D-Bus error.
pub fn error_message(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(_, msg, _) => msg.clone().unwrap_or_default(),
        other => other.to_string(),
    }
}
