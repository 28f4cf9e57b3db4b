//! A first backup streams the address book into the session: the daemon reads a page of
//! contacts from EDS (a cursor, 500 at a time) whenever less than a message is queued, so
//! it never holds the whole book. The book changing while it is streamed (contacts added,
//! edited and removed between two pages) must lose and duplicate nothing: the listing starts
//! over and skips what already went out, and the next backup sends what changed since. Real
//! EDS, real SyncEvolution (with a small MaxMsgSize, so the session has many messages), and
//! the test proxy, which holds one message for two seconds while the test edits the book.

use std::time::{Duration, Instant};

use harness::fault_proxy::{At, Fault, FaultKind, FaultProxy};
use harness::syncml_server::ServerOptions;
use harness::{sync1, EnvOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_edited_while_streamed_ends_exact_on_the_server() {
    let server_opts = ServerOptions { max_msg_size: Some(40_000), ..ServerOptions::default() };
    let env = TestEnv::with_server_options("streamed", EnvOptions::default(), server_opts).await.unwrap();
    let n = 1300; // three pages of the EDS cursor
    let mut specs = env.contacts(n);
    let mut uids = env.phone.seed(&specs).await.unwrap();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", env.server().port())).unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sync1::contacts_account(&proxy.url_for(s.url()), s.username(), s.password())).await.expect("SetAccount");

    // hold the third message of the first session (its Sync has begun) for two seconds
    proxy.arm(Fault { at: At::Msg(3), kind: FaultKind::Delay(Duration::from_secs(2)) });
    let watcher = harness::JobWatcher::new(sync.connection()).await.unwrap();
    let job = sync.backup().await.expect("Backup");
    let t = Instant::now();
    while proxy.fired().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60), "the held message never came: {:?}", proxy.seen());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // meanwhile: 3 new contacts, one edited, one removed (the book's revision changes)
    let added = env.contacts_range(5000, 3);
    uids.extend(env.phone.seed(&added).await.unwrap());
    specs.extend(added);
    specs[7].edit("while streamed");
    env.phone.book().modify_contacts(&[specs[7].to_vcard(Some(&uids[7]))]).await.unwrap();
    env.phone.book().remove_contacts(&[uids[9].clone()]).await.unwrap();
    specs.remove(9);
    uids.remove(9);

    let o = sync.wait_job(&watcher, job.as_str(), JOB_TIMEOUT).await.unwrap();
    proxy.disarm();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!(c.failed, 0, "{}", o.summary("contacts"));
    let logs = env.phone.daemon.logs();
    assert!(logs.contains("streaming the items"), "the first backup did not stream:\n{}", env.daemon_log_tail());
    assert!(logs.contains("changed while listed; starting over"), "the listing did not start over:\n{}", env.daemon_log_tail());
    let sessions = proxy.sessions();
    assert!(sessions[0].1 >= 8, "a short session: {sessions:?}");
    // every contact the phone had before the edits is there once (the removed one may be,
    // the new ones may be); none twice
    let on_server = env.server().item_count("contacts");
    assert!((n..=n + 3).contains(&on_server), "{on_server} contacts on the server after the first backup");
    let before: Vec<_> = specs.iter().filter(|s| s.index < 5000).cloned().collect();
    let mut problems = env.server_contact_problems(&before, false);
    problems.retain(|p| !p.contains(specs[7].key())); // edited: either version
    assert!(problems.is_empty(), "{problems:#?}");

    // the next backup sends what changed meanwhile: the server equals the phone
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    assert_eq!(env.server().item_count("contacts"), specs.len());
    env.assert_server_contacts(&specs, true);
}
