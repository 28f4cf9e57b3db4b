//! Contacts backup against a real SyncML server (acceptance criteria 1-4).
//!
//! Server items are matched to the seeded contacts by a test key EMAIL
//! (`…+c<run>-<n>@example.org`), never by UID, and compared field by field:
//! N, FN, TEL, EMAIL, ADR, NOTE, ORG, CATEGORIES, BDAY, PHOTO (decoded bytes
//! = the generated PNG). What the server may rewrite is listed in
//! `harness::vcard::ALLOWED_REWRITES` (and printed with any difference);
//! everything else must be equal.

use std::time::{Duration, Instant};

use harness::sync1::JobOutcome;
use harness::{PhoneOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

fn describe(o: &JobOutcome) -> String {
    format!(
        "job {} state {:?} error {:?} in {:.1}s, report {:#}",
        o.path,
        o.state,
        o.error,
        o.duration.as_secs_f64(),
        o.report.raw
    )
}

/// 1. 500 contacts (some with photos) arrive on the server field by field;
/// 2. after editing 3 and deleting 2 the next backup sends exactly that;
/// 3. after the EDS address-book factory was killed a backup succeeds with
///    no changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_500_contacts_then_edits_and_deletes_then_factory_killed() {
    let mut env = TestEnv::new("backup-500").await.unwrap();
    let mut specs = env.contacts(500);
    assert!(specs.iter().filter(|s| s.photo.is_some()).count() >= 40);
    let t = Instant::now();
    let uids = env.phone.seed(&specs).await.unwrap();
    eprintln!("seeded 500 contacts in {:.2}s", t.elapsed().as_secs_f64());

    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");

    // --- 1. first backup: everything arrives, field by field
    let watcher = harness::JobWatcher::new(sync.connection()).await.unwrap();
    let job = sync.backup().await.expect("Backup");
    let again = sync.backup().await.expect("second Backup");
    assert_eq!(job, again, "a second Backup() while one runs must return the running job");
    let kind: String = sync.job(job.as_str()).await.unwrap().get_property("Kind").await.unwrap();
    assert_eq!(kind, "backup");
    let o = sync.wait_job(&watcher, job.as_str(), JOB_TIMEOUT).await.unwrap();
    assert!(o.report_from_signal, "no Finished signal for {}", o.path);
    eprintln!("first backup: {:.1}s", o.duration.as_secs_f64());
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert_eq!(o.error, "", "{}", describe(&o));
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.failed, c.error.as_str()), (500, 0, ""), "{}", describe(&o));
    assert!(c.errors.is_empty(), "{}", describe(&o));
    assert!(
        o.progress.iter().any(|(class, _, total)| class == "contacts" && *total > 0),
        "no Progress signal for contacts: {:?}",
        o.progress
    );
    assert!(o.progress.iter().all(|(_, done, total)| done <= total), "{:?}", o.progress);
    let last = o.progress.iter().rev().find(|(class, _, _)| class == "contacts").unwrap();
    assert_eq!((last.1, last.2), (500, 500), "last Progress for contacts: {:?}", o.progress);
    assert_eq!(env.server().item_count("contacts"), 500);
    env.assert_server_contacts(&specs, true);
    for db in ["calendar", "tasks", "notes", "sms", "roster"] {
        assert_eq!(env.server().item_count(db), 0, "{db} was not enabled");
    }

    // --- 2. edit 3 (one with a photo), delete 2
    let edited = [11usize, 20, 33];
    let deleted = [40usize, 41];
    let mut modified = vec![];
    for &i in &edited {
        specs[i].edit("second backup");
        modified.push(specs[i].to_vcard(Some(&uids[i])));
    }
    env.phone.book().modify_contacts(&modified).await.unwrap();
    env.phone.book().remove_contacts(&deleted.iter().map(|&i| uids[i].clone()).collect::<Vec<_>>()).await.unwrap();
    let remaining: Vec<_> = specs.iter().enumerate().filter(|(i, _)| !deleted.contains(i)).map(|(_, s)| s.clone()).collect();
    assert_eq!(remaining.len(), 498);

    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("second backup: {:.1}s", o.duration.as_secs_f64());
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 3, 2, 0), "{}", describe(&o));
    assert_eq!(env.server().item_count("contacts"), 498);
    env.assert_server_contacts(&remaining, true);
    for &i in &edited {
        let on_server = env
            .server_contacts("contacts")
            .into_iter()
            .find(|(_, c)| c.key().as_deref() == Some(specs[i].key()))
            .expect("edited contact on the server");
        assert!(on_server.1.text("NOTE").unwrap_or_default().starts_with("Edited (second backup)"), "{:?}", on_server.1);
    }

    // --- 3. kill EDS's address-book factory; the next backup has nothing to send
    let pid = env.phone.kill_addressbook_factory().await.unwrap();
    eprintln!("killed evolution-addressbook-factory {pid:?}");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("third backup: {:.1}s", o.duration.as_secs_f64());
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 0, 0, 0), "{}", describe(&o));
    env.assert_server_contacts(&remaining, true);
    env.phone.book_mut().reopen().await.unwrap();
    assert_eq!(env.phone.book().list_uids().await.unwrap().len(), 498, "EDS must be untouched");

    // --- 3b. a change made through the new factory, then the factory dies
    // again: the daemon must read the fresh data, not a stale view
    specs[50].edit("after factory restart");
    env.phone.book().modify_contacts(&[specs[50].to_vcard(Some(&uids[50]))]).await.unwrap();
    env.phone.kill_addressbook_factory().await.unwrap().expect("factory running");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 1, 0, 0), "{}", describe(&o));
    let remaining: Vec<_> = specs.iter().enumerate().filter(|(i, _)| !deleted.contains(i)).map(|(_, s)| s.clone()).collect();
    env.assert_server_contacts(&remaining, true);

    let history = sync.history(10).await.unwrap();
    assert!(history.len() >= 4, "GetHistory(10) after 4 backups: {history:#?}");
    let last = sync.last_backup().await.unwrap();
    assert!(last.as_object().is_some_and(|o| !o.is_empty()), "LastBackup: {last:#}");
    env.assert_no_secrets_leaked(&env.phone);
}

/// 4. A second phone (own EDS, own imsyncd state → another device ID) with
/// the same account: the first phone's contacts stay on the server, and the
/// job reports ServerHasOtherData with the count (state partial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_phone_with_same_account_keeps_first_phones_contacts() {
    let env = TestEnv::new("second-phone").await.unwrap();
    let first = env.contacts(20);
    env.phone.seed(&first).await.unwrap();
    let sync_a = env.phone.sync1().await.unwrap();
    sync_a.set_account(&env.account()).await.expect("SetAccount on phone A");
    let o = sync_a.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    env.assert_server_contacts(&first, true);

    let phone_b = env.new_phone("p2", &PhoneOptions::default()).await.unwrap();
    // other names than phone A's contacts: in a slow sync the server merges
    // an incoming contact into an existing one with the same name
    let mut second = env.contacts_range(1000, 10);
    for s in &mut second {
        s.rename_family(" Zweitgerät");
    }
    phone_b.seed(&second).await.unwrap();
    let sync_b = phone_b.sync1().await.unwrap();
    sync_b.set_account(&env.account()).await.expect("SetAccount on phone B");
    let o = sync_b.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("second phone: {}", describe(&o));
    assert_eq!(o.state, "partial", "{}\n{}", describe(&o), phone_b.daemon.log_tail(6000));
    let c = o.report.class("contacts");
    assert_eq!(c.error, "org.imsync.Error.ServerHasOtherData", "{}", describe(&o));
    assert_eq!(c.server_other_items, 20, "{}", describe(&o));

    // the first phone's contacts are all still there, unchanged
    env.assert_server_contacts(&first, false);
    // backup only: nothing from the server was written into phone B's EDS
    assert_eq!(phone_b.book().list_uids().await.unwrap().len(), 10);
    eprintln!(
        "server holds {} contacts after the second phone's backup (clients {:?})",
        env.server().item_count("contacts"),
        env.server().clients()
    );
    assert_eq!(env.server().clients().len(), 2, "the phones must use different device IDs");
    // phone B's own contacts were backed up
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted), (10, 0, 0), "{}", describe(&o));
    env.assert_server_contacts(&first.iter().chain(&second).cloned().collect::<Vec<_>>(), true);
    env.assert_no_secrets_leaked(&env.phone);
    env.assert_no_secrets_leaked(&phone_b);
}
