//! The mass-delete guard (acceptance criterion 6): after the phone was wiped,
//! `Backup()` refuses to delete the server's copy of every class
//! (`org.imsync.Error.MassDelete`, class state `partial`) and leaves the
//! server untouched; `BackupWith({"allow_mass_delete": true})` goes through.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::calendar::{self, CalendarList, ListKind};
use harness::sync1::{self, JobOutcome};
use harness::TestEnv;

const JOB_TIMEOUT: Duration = Duration::from_secs(300);
const CLASSES: [(&str, &str); 4] = [("contacts", "contacts"), ("calendar", "calendar"), ("tasks", "tasks"), ("notes", "notes")];

fn describe(o: &JobOutcome) -> String {
    format!("job {} state {:?} error {:?} in {:.1}s, report {:#}", o.path, o.state, o.error, o.duration.as_secs_f64(), o.report.raw)
}

/// Every stored item of the four databases, byte for byte.
fn snapshot(env: &TestEnv) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    CLASSES.iter().map(|(_, db)| (db.to_string(), env.server().items(db))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_phone_backup_is_refused_until_confirmed() {
    let env = TestEnv::new("mass-delete").await.unwrap();
    let a = env.phone.bus.address().to_string();
    let lists = [
        CalendarList::open_system(&a, ListKind::Events).await.unwrap(),
        CalendarList::open_system(&a, ListKind::Tasks).await.unwrap(),
        CalendarList::open_system(&a, ListKind::Memos).await.unwrap(),
    ];
    let contacts = env.contacts(20);
    let uids = env.phone.seed(&contacts).await.unwrap();
    let events = calendar::events(&env.run_id, 20);
    calendar::seed(&lists[0], &events).await.unwrap();
    // a series' master and each moved occurrence are items of their own on the wire
    let n_events: u64 = events.iter().map(|s| 1 + s.instances.len() as u64).sum();
    calendar::seed(&lists[1], &calendar::tasks(&env.run_id, 10)).await.unwrap();
    calendar::seed(&lists[2], &calendar::memos(&env.run_id, 10)).await.unwrap();
    let counts = [("contacts", 20u64), ("calendar", n_events), ("tasks", 10), ("notes", 10)];

    let sync = env.phone.sync1().await.unwrap();
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    let classes: Vec<&str> = CLASSES.iter().map(|(c, _)| *c).collect();
    sync.set_account(&sync1::classes_account(s.url(), s.username(), s.password(), &classes)).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    for (class, n) in counts {
        assert_eq!(o.report.class(class).added, n, "{class}: {}", describe(&o));
        assert_eq!(env.server().item_count(class) as u64, n);
    }
    let before = snapshot(&env);

    // wipe the phone through EDS
    env.phone.book().remove_contacts(&uids).await.unwrap();
    for l in &lists {
        l.remove_all().await.unwrap();
    }

    // refused, per class, and the server is untouched
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("backup of the wiped phone: {}", describe(&o));
    assert_eq!(o.state, "partial", "{}\n{}", describe(&o), env.daemon_log_tail());
    for (class, _) in counts {
        let c = o.report.class(class);
        assert_eq!(c.error, "org.imsync.Error.MassDelete", "{class}: {}", describe(&o));
        assert_eq!(c.raw["state"].as_str(), Some("partial"), "{class}: {}", describe(&o));
        assert_eq!((c.added, c.replaced, c.deleted), (0, 0, 0), "{class}: {}", describe(&o));
    }
    assert_eq!(o.report.raw["messages"].as_u64(), Some(0), "a refused backup must not talk to the server: {}", describe(&o));
    assert!(snapshot(&env) == before, "the server's items changed although the backup was refused");

    // asking again without confirming changes nothing either
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "partial", "{}", describe(&o));
    assert!(snapshot(&env) == before, "the server's items changed although the backup was refused");

    // confirmed: the server's copy follows the phone
    let mut opts = sync1::Dict::new();
    opts.insert("allow_mass_delete".into(), sync1::b(true));
    let o = sync.run_backup_with(&opts, JOB_TIMEOUT).await.unwrap();
    eprintln!("confirmed backup: {}", describe(&o));
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    for (class, n) in counts {
        let c = o.report.class(class);
        assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 0, n, 0), "{class}: {}", describe(&o));
        assert_eq!(env.server().item_count(class), 0, "{class} on the server");
    }
    // and from now on an empty phone is the normal state
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", describe(&o));
    env.assert_no_secrets_leaked(&env.phone);
}
