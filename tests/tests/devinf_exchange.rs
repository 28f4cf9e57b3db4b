//! DevInf goes over the wire once, not in every session: the first backup puts ours and gets
//! the server's (SyncEvolution's is ~10 KB of WBXML); later backups with the same classes
//! leave both out and use what was kept; a failed session, and every restore (the server
//! picks the formats it sends from our DevInf), exchange them again. Against the real
//! SyncEvolution server, through the test proxy that records what each message carried.

use std::time::Duration;

use harness::fault_proxy::{At, Fault, FaultKind, FaultProxy};
use harness::sync1::{self, JobOutcome};
use harness::vcard::ContactSpec;
use harness::TestEnv;

const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// The commands of the first message of the last job's first session (a job that recovers
/// from a failed session has a second one, which sends the held-back items).
fn package_1(proxy: &FaultProxy, mark: usize) -> Vec<String> {
    proxy.seen().into_iter().skip(mark).find(|s| s.msg_id == 1).expect("message 1").commands
}

fn exchanges_devinf(commands: &[String]) -> (bool, bool) {
    (commands.iter().any(|c| c == "Put"), commands.iter().any(|c| c == "Get"))
}

fn check(o: &JobOutcome, state: &str, env: &TestEnv) {
    assert_eq!(o.state, state, "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
}

/// `n` new contacts on the phone (from index `from`).
async fn add(env: &TestEnv, specs: &mut Vec<ContactSpec>, from: usize, n: usize) {
    let more = env.contacts_range(from, n);
    env.phone.seed(&more).await.unwrap();
    specs.extend(more);
}

/// A backup that succeeds, leaves the server equal to the phone, and whose package 1 Puts
/// and Gets DevInf as `expected` says.
async fn backup(env: &TestEnv, sync: &sync1::Sync1, proxy: &FaultProxy, specs: &[ContactSpec], expected: (bool, bool)) -> JobOutcome {
    let mark = proxy.seen().len();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    check(&o, "succeeded", env);
    assert_eq!(exchanges_devinf(&package_1(proxy, mark)), expected, "{:?}", package_1(proxy, mark));
    env.assert_server_contacts(specs, true);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devinf_goes_out_once_and_again_after_a_failed_session_and_for_a_restore() {
    let env = TestEnv::new("devinf").await.unwrap();
    let mut specs = env.contacts(20);
    env.phone.seed(&specs).await.unwrap();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", env.server().port())).unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sync1::contacts_account(&proxy.url_for(s.url()), s.username(), s.password())).await.expect("SetAccount");

    // first backup: ours out, theirs in
    backup(&env, &sync, &proxy, &specs, (true, true)).await;

    // a change: neither, and the server still takes it
    add(&env, &mut specs, 100, 2).await;
    let o = backup(&env, &sync, &proxy, &specs, (false, false)).await;
    assert_eq!(o.report.class("contacts").added, 2, "{}", o.summary("contacts"));

    // a session that fails: the next one exchanges both again
    add(&env, &mut specs, 200, 1).await;
    proxy.arm(Fault { at: At::Cmd("Sync"), kind: FaultKind::Http500 });
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    proxy.disarm();
    check(&o, "failed", &env);
    backup(&env, &sync, &proxy, &specs, (true, true)).await;

    // a restore always exchanges both; the phone already has everything
    let mark = proxy.seen().len();
    let o = sync.run_restore(&["contacts"], JOB_TIMEOUT).await.unwrap();
    check(&o, "succeeded", &env);
    assert_eq!(exchanges_devinf(&package_1(&proxy, mark)), (true, true), "{:?}", package_1(&proxy, mark));
    assert_eq!(o.report.class("contacts").added, 0, "{}", o.summary("contacts"));
    assert_eq!(env.phone.book().list_uids().await.unwrap().len(), specs.len());

    // and the backup after it leaves both out again
    add(&env, &mut specs, 300, 1).await;
    backup(&env, &sync, &proxy, &specs, (false, false)).await;
}
