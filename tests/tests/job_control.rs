//! Job control beyond the acceptance list: BackupWith(classes), Cancel(),
//! and a consistent state after a cancelled backup.

use std::time::Duration;

use harness::sync1::Dict;
use harness::{JobWatcher, TestEnv};
use zbus::zvariant::{OwnedValue, Value};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_backup_leaves_a_consistent_state_and_backup_with_works() {
    let env = TestEnv::new("job-control").await.unwrap();
    let specs = env.contacts(300);
    env.phone.seed(&specs).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");

    // cancel right away: the SyncML session needs seconds for 300 contacts
    let watcher = JobWatcher::new(sync.connection()).await.unwrap();
    let job = sync.backup().await.expect("Backup");
    let () = sync.job(job.as_str()).await.unwrap().call("Cancel", &()).await.expect("Cancel");
    let o = sync.wait_job(&watcher, job.as_str(), JOB_TIMEOUT).await.unwrap();
    eprintln!("cancelled job: state {:?} error {:?} report {:#}", o.state, o.error, o.report.raw);
    assert_eq!(o.state, "cancelled", "Cancel() right after Backup(): {:?} {:#}\n{}", o.error, o.report.raw, env.daemon_log_tail());
    let on_server = env.server().item_count("contacts");
    eprintln!("{on_server} contacts reached the server before the cancel took effect");

    // BackupWith(classes = [contacts]): everything ends up on the server, once
    let mut opts = Dict::new();
    opts.insert("classes".into(), OwnedValue::try_from(Value::from(vec!["contacts"])).unwrap());
    let watcher = JobWatcher::new(sync.connection()).await.unwrap();
    let job = sync.backup_with(&opts).await.expect("BackupWith");
    let o = sync.wait_job(&watcher, job.as_str(), JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{:?} {:#}\n{}", o.error, o.report.raw, env.daemon_log_tail());
    env.assert_server_contacts(&specs, true);

    // and a further backup has nothing left to send
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{:?} {:#}", o.error, o.report.raw);
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted), (0, 0, 0), "{:#}", o.report.raw);
    env.assert_no_secrets_leaked(&env.phone);
}
