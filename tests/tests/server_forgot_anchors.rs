//! An incremental backup does not convert the contacts the server already has as they are
//! (their digest is known), and still sends everything when the server asks for a slow
//! sync (508, e.g. after it lost its state for this phone): the contacts skipped as
//! unchanged are read after all and the server ends with exactly the phone's contacts.
//!
//! The server is made to answer 508 the way it happens in the field: the anchor the
//! phone presents is not the one the server keeps (here the phone's state database is
//! edited while the daemon is stopped).

use std::time::Duration;

use harness::TestEnv;

const JOB_TIMEOUT: Duration = Duration::from_secs(300);


fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchall(); c.commit(); print(r)")
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_contacts_are_not_converted_until_the_server_wants_everything() {
    let mut env = TestEnv::new("forgot-anchors").await.unwrap();
    let mut specs = env.contacts(80);
    let uids = env.phone.seed(&specs).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");

    // first backup (slow): every contact, with its digest recorded
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    env.assert_server_contacts(&specs, true);
    let db = env.phone.daemon.dirs().data.join("imsync/state.db");
    let edit = |specs: &mut [harness::ContactSpec], i: usize, what: &str| {
        specs[i].edit(what);
        specs[i].to_vcard(Some(&uids[i]))
    };

    // an incremental backup: 3 edited contacts are converted and sent, the other 77 are
    // recognised by their digest
    let modified: Vec<String> = [5usize, 17, 60].iter().map(|&i| edit(&mut specs, i, "incremental")).collect();
    env.phone.book().modify_contacts(&modified).await.unwrap();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    let c = o.report.class("contacts");
    let incremental = c.mode.clone();
    assert!(matches!(incremental.as_str(), "two-way" | "one-way-from-client"), "{}", o.summary("contacts"));
    assert_eq!((c.added, c.replaced, c.deleted), (0, 3, 0), "{}", o.summary("contacts"));
    env.assert_server_contacts(&specs, true);
    let with_digest = sqlite(&db, "SELECT count(*) FROM items WHERE class = 'contacts' AND length(source_digest) = 16");
    assert_eq!(with_digest, "[(80,)]");

    // the server no longer knows the anchor the phone presents: it answers 508
    env.phone.daemon.stop();
    sqlite(&db, "UPDATE sync_state SET last_anchor = 'an-anchor-the-server-never-saw' WHERE class = 'contacts'");
    env.phone.daemon.restart().await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    // (a new contact, not an edit: in a slow sync SyncEvolution pairs items by content, so
    // an edited one would be stored next to its old copy — a property of slow syncs)
    let added = env.contacts_range(80, 1);
    env.phone.seed(&added).await.unwrap();
    specs.extend(added);
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    let c = o.report.class("contacts");
    // a slow sync sends all 81 (the 80 skipped as unchanged read after all)
    assert_eq!((c.mode.as_str(), c.added + c.replaced, c.failed), ("slow", 81, 0), "{}", o.summary("contacts"));
    env.assert_server_contacts(&specs, true);
    assert!(env.daemon_log_tail().contains("reading the unchanged ones") || env.phone.daemon.logs().contains("reading the unchanged ones"));

    // and incremental again afterwards
    let modified: Vec<String> = [33usize].iter().map(|&i| edit(&mut specs, i, "afterwards")).collect();
    env.phone.book().modify_contacts(&modified).await.unwrap();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", o.summary("contacts"), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.mode.as_str(), c.replaced), (incremental.as_str(), 1), "{}", o.summary("contacts"));
    env.assert_server_contacts(&specs, true);
}
