//! Helpers shared by the account, roster and provisioning tests: `org.imsync.Account1`
//! proxies, roster entries, signals.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use harness::daemon::{SYNC1_NAME, SYNC1_PATH};
use harness::sync1::{JobOutcome, JobWatcher, Sync1};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

pub const ACCOUNT1_IFACE: &str = "org.imsync.Account1";
pub const JOB_TIMEOUT: Duration = Duration::from_secs(300);

pub type Dict = HashMap<String, OwnedValue>;

/// A proxy of an account object.
pub async fn account(conn: &zbus::Connection, path: &str) -> zbus::Proxy<'static> {
    zbus::proxy::Builder::<zbus::Proxy>::new(conn)
        .destination(SYNC1_NAME)
        .unwrap()
        .path(path.to_string())
        .unwrap()
        .interface(ACCOUNT1_IFACE)
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

pub async fn list_accounts(sync: &Sync1) -> Vec<String> {
    let v: Vec<OwnedObjectPath> = sync.proxy().call("ListAccounts", &()).await.expect("ListAccounts");
    v.into_iter().map(|p| p.as_str().to_string()).collect()
}

/// The account object whose `Name` is `name`.
pub async fn account_named(sync: &Sync1, name: &str) -> zbus::Proxy<'static> {
    for p in list_accounts(sync).await {
        let a = account(sync.connection(), &p).await;
        let n: String = a.get_property("Name").await.unwrap();
        if n == name {
            return a;
        }
    }
    panic!("no account object named {name}");
}

/// Start a job through `call` and wait for it.
pub async fn run_job(sync: &Sync1, proxy: &zbus::Proxy<'_>, method: &str, args: &(impl serde::Serialize + zbus::zvariant::DynamicType)) -> JobOutcome {
    let watcher = JobWatcher::new(sync.connection()).await.unwrap();
    let job: OwnedObjectPath = proxy.call(method, args).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    sync.wait_job(&watcher, job.as_str(), JOB_TIMEOUT).await.unwrap()
}

/// One roster entry as the tests describe it: (im_id, name, groups, subscription).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub im_id: String,
    pub name: String,
    pub groups: Vec<String>,
    pub subscription: String,
}

impl Entry {
    pub fn to_dbus(&self) -> HashMap<&'static str, Value<'static>> {
        HashMap::from([
            ("im_id", Value::from(self.im_id.clone())),
            ("name", Value::from(self.name.clone())),
            ("groups", Value::from(self.groups.clone())),
            ("subscription", Value::from(self.subscription.clone())),
        ])
    }

    pub fn from_dbus(d: &Dict) -> Entry {
        let s = |k: &str| String::try_from(d.get(k).unwrap_or_else(|| panic!("no {k} in {d:?}")).try_clone().unwrap()).unwrap();
        Entry {
            im_id: s("im_id"),
            name: s("name"),
            groups: Vec::<String>::try_from(d["groups"].try_clone().unwrap()).unwrap(),
            subscription: s("subscription"),
        }
    }
}

/// `n` friends with names from several scripts, 0 to 3 groups each (sorted), every
/// subscription state; a few without a name.
pub fn roster(n: usize, tag: &str) -> Vec<Entry> {
    const GROUPS: &[&str] = &["Family", "Work", "Friends, close", "Fußball", "同事", "Band; old"];
    const NAMES: &[&str] = &["Bob", "Zoë", "Ярослав", "明", "O'Neil", "Anne-Marie"];
    const SUBS: &[&str] = &["none", "to", "from", "both"];
    let mut out: Vec<Entry> = (0..n)
        .map(|i| {
            let mut groups: Vec<String> = (0..i % 4).map(|g| GROUPS[(i * 7 + g * 3) % GROUPS.len()].to_string()).collect();
            groups.sort();
            groups.dedup();
            Entry {
                im_id: format!("friend{i:03}-{tag}@example.org"),
                name: if i % 37 == 5 { String::new() } else { format!("{} {i}", NAMES[i % NAMES.len()]) },
                groups,
                subscription: SUBS[i % SUBS.len()].to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

pub fn entries_dbus(entries: &[Entry]) -> Vec<HashMap<&'static str, Value<'static>>> {
    entries.iter().map(Entry::to_dbus).collect()
}

pub async fn get_roster(sync: &Sync1, account: &str) -> Vec<Entry> {
    let v: Vec<Dict> = sync.proxy().call("GetRoster", &(account,)).await.expect("GetRoster");
    let mut out: Vec<Entry> = v.iter().map(Entry::from_dbus).collect();
    out.sort();
    out
}

pub async fn set_roster(sync: &Sync1, account: &str, entries: &[Entry]) {
    sync.proxy().call::<_, _, ()>("SetRoster", &(account, entries_dbus(entries))).await.expect("SetRoster");
}

/// Collects the `s` argument of a Sync1 signal (`AccountChanged`, `RosterRestored`).
pub struct SignalLog {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SignalLog {
    pub async fn new(conn: &zbus::Connection, member: &'static str) -> SignalLog {
        let proxy = zbus::Proxy::new(conn, SYNC1_NAME, SYNC1_PATH, harness::sync1::SYNC1_IFACE).await.unwrap();
        let mut stream = proxy.receive_signal(member).await.unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            let _keep = proxy;
            while let Some(msg) = stream.next().await {
                if let Ok(a) = msg.body().deserialize::<String>() {
                    s2.lock().unwrap().push(a);
                }
            }
        });
        SignalLog { seen, task }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait (up to 5 s) until `arg` was seen.
    pub async fn wait_for(&self, arg: &str) -> bool {
        for _ in 0..50 {
            if self.seen().iter().any(|s| s == arg) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for SignalLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn describe(o: &JobOutcome) -> String {
    format!("job {} state {:?} error {:?}, report {:#}", o.path, o.state, o.error, o.report.raw)
}
