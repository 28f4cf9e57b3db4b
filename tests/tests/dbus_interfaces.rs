//! The live daemon's D-Bus interfaces match the XML files in
//! `dbus-interfaces/` (acceptance criterion 8): same methods, signals and
//! properties with the same signatures (Sync1, Job1, Account1).

use std::path::PathBuf;
use std::time::Duration;

use harness::daemon::{SYNC1_NAME, SYNC1_PATH};
use harness::introspect;
use harness::TestEnv;

fn xml_file(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dbus-interfaces").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check(iface: &str, file: &str, live_xml: &str) {
    let expected = introspect::parse(&xml_file(file)).unwrap();
    let expected = expected.get(iface).unwrap_or_else(|| panic!("{file} does not describe {iface}"));
    let live = introspect::parse(live_xml).unwrap();
    let live = live.get(iface).unwrap_or_else(|| panic!("live object does not implement {iface}:\n{live_xml}"));
    let d = introspect::diff(expected, live);
    assert!(d.is_empty(), "{iface}: live daemon and {file} differ:\n{}", d.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_interfaces_match_the_xml_files() {
    let env = TestEnv::new("introspection").await.unwrap();
    let conn = env.phone.connection();
    let root = introspect::introspect(conn, SYNC1_NAME, SYNC1_PATH).await.unwrap();
    check("org.imsync.Sync1", "org.imsync.Sync1.xml", &root);

    // a job object: back up a few contacts and introspect the job right away
    env.phone.seed(&env.contacts(30)).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");

    // an account object (org.imsync.Account1), found through ListAccounts
    let accounts: Vec<zbus::zvariant::OwnedObjectPath> = sync.proxy().call("ListAccounts", &()).await.expect("ListAccounts");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let account_xml = introspect::introspect(conn, SYNC1_NAME, accounts[0].as_str()).await.unwrap();
    check("org.imsync.Account1", "org.imsync.Account1.xml", &account_xml);
    // and the root announces it through the ObjectManager
    assert!(root.contains("org.freedesktop.DBus.ObjectManager"), "no ObjectManager on {SYNC1_PATH}:\n{root}");
    let watcher = harness::JobWatcher::new(conn).await.unwrap();
    let job = sync.backup().await.expect("Backup");
    let job_xml = introspect::introspect(conn, SYNC1_NAME, job.as_str()).await.unwrap();
    check("org.imsync.Job1", "org.imsync.Job1.xml", &job_xml);
    // and the job is listed in Jobs while it exists
    let jobs = sync.jobs().await.unwrap();
    assert!(jobs.iter().any(|j| j.as_str() == job.as_str()), "Jobs {jobs:?} lacks {job}");
    let o = sync.wait_job(&watcher, job.as_str(), Duration::from_secs(180)).await.unwrap();
    assert_eq!(o.state, "succeeded", "{:?} {:#}", o.error, o.report.raw);
}
