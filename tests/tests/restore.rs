//! Restore from the real SyncEvolution server into the real EDS (acceptance
//! criteria 4 and 5): a wiped phone gets every item back field by field, a
//! merge keeps what only the phone has, a replace makes the phone equal the
//! server. Afterwards a backup has nothing to send.

use std::time::{Duration, Instant};

use base64::Engine as _;
use harness::calendar::{self, CalObject, CalSpec, CalendarList, ListKind};
use harness::sync1::{self, JobOutcome};
use harness::vcard::{self, ContactSpec};
use harness::TestEnv;

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

fn describe(o: &JobOutcome) -> String {
    format!("job {} state {:?} error {:?} in {:.1}s, report {:#}", o.path, o.state, o.error, o.duration.as_secs_f64(), o.report.raw)
}

fn account(env: &TestEnv, classes: &[&str]) -> sync1::Dict {
    let s = env.server();
    env.remember_secret(s.username(), s.password());
    sync1::classes_account(s.url(), s.username(), s.password(), classes)
}

/// EDS's contacts, with photos the local backend moved to files inlined
/// again (so they compare as bytes).
async fn phone_contacts(env: &TestEnv) -> Vec<(String, vcard::Contact)> {
    let mut out = vec![];
    for text in env.phone.book().list().await.unwrap() {
        let mut c = vcard::parse(&text).unwrap();
        for p in c.props.iter_mut().filter(|p| p.name == "PHOTO") {
            if let Some(path) = p.value.strip_prefix("file://") {
                let bytes = std::fs::read(path).unwrap_or_default();
                p.value = base64::engine::general_purpose::STANDARD.encode(bytes);
                p.params = vec![("ENCODING".into(), vec!["b".into()]), ("TYPE".into(), vec!["PNG".into()])];
            }
        }
        out.push((c.uid().unwrap_or_default(), c));
    }
    out
}

async fn contact_problems(env: &TestEnv, expected: &[ContactSpec], exact: bool) -> Vec<String> {
    let actual = phone_contacts(env).await;
    let exp: Vec<vcard::Contact> = expected.iter().map(|s| s.contact()).collect();
    let mut problems = vcard::compare_sets(&exp, &actual);
    if !exact {
        problems.retain(|p| !p.contains("unexpected on the server"));
    }
    for spec in expected.iter().filter(|s| s.photo.is_some()) {
        if let Some((uid, c)) = actual.iter().find(|(_, c)| c.key().as_deref() == Some(spec.key())) {
            let got = c.first("PHOTO").and_then(|p| p.binary());
            if got.as_ref() != spec.photo.as_ref() {
                problems.push(format!("{} ({uid}): PHOTO bytes differ ({:?} bytes)", spec.key(), got.map(|g| g.len())));
            }
        }
    }
    problems
}

async fn assert_phone_contacts(env: &TestEnv, expected: &[ContactSpec], exact: bool) {
    let problems = contact_problems(env, expected, exact).await;
    assert!(
        problems.is_empty(),
        "phone contacts differ ({} problems; \"on the server\" means on the phone here):\n{}\n\nallowed rewrites:\n - {}\n{}",
        problems.len(),
        problems.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
        vcard::ALLOWED_REWRITES.join("\n - "),
        env.daemon_log_tail()
    );
}

/// Events / tasks on the phone against the specs; problems of series with
/// a moved occurrence are returned separately.
async fn calendar_problems(list: &CalendarList, specs: &[CalSpec]) -> (Vec<String>, Vec<String>) {
    let expected: Vec<CalObject> = specs.iter().map(|s| s.expected()).collect();
    let actual = list.objects().await.unwrap();
    let problems = calendar::compare_sets(&expected, &actual, true);
    let with_instances: Vec<&str> = specs.iter().filter(|s| !s.instances.is_empty()).map(|s| s.uid.as_str()).collect();
    problems.into_iter().partition(|p| with_instances.iter().any(|u| p.starts_with(&format!("{u}:"))))
}

/// Memos are matched by summary (the notes store is plain text, without UIDs).
async fn memo_problems(list: &CalendarList, specs: &[CalSpec]) -> Vec<String> {
    let actual: Vec<(String, String)> = list.objects().await.unwrap().iter().map(calendar::memo_fields).collect();
    let mut problems = vec![];
    for s in specs {
        let (summary, text) = s.memo();
        let found: Vec<_> = actual.iter().filter(|(sum, _)| *sum == summary).collect();
        match found.as_slice() {
            [] => problems.push(format!("memo {summary:?} missing")),
            [(_, t)] if *t != text => problems.push(format!("memo {summary:?}: text {t:?}, expected {text:?}")),
            [_] => {}
            more => problems.push(format!("memo {summary:?}: {} copies", more.len())),
        }
    }
    if actual.len() != specs.len() {
        problems.push(format!("{} memos on the phone, expected {}", actual.len(), specs.len()));
    }
    problems
}

/// 4. Back up contacts, events, tasks and memos; wipe EDS; Restore() brings
///    every item back field by field; a backup afterwards sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_phone_gets_everything_back_then_backup_sends_nothing() {
    let env = TestEnv::new("restore-wiped").await.unwrap();
    let a = env.phone.bus.address().to_string();
    let cal = CalendarList::open_system(&a, ListKind::Events).await.unwrap();
    let tasks_l = CalendarList::open_system(&a, ListKind::Tasks).await.unwrap();
    let memos_l = CalendarList::open_system(&a, ListKind::Memos).await.unwrap();
    let contacts = env.contacts(60);
    let events = calendar::events(&env.run_id, 60);
    let tasks = calendar::tasks(&env.run_id, 20);
    let memos = calendar::memos(&env.run_id, 20);
    let t = Instant::now();
    let contact_uids = env.phone.seed(&contacts).await.unwrap();
    calendar::seed(&cal, &events).await.unwrap();
    calendar::seed(&tasks_l, &tasks).await.unwrap();
    calendar::seed(&memos_l, &memos).await.unwrap();
    eprintln!("seeded in {:.2}s", t.elapsed().as_secs_f64());

    let classes = ["contacts", "calendar", "tasks", "notes"];
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&account(&env, &classes)).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("backup: {:.1}s", o.duration.as_secs_f64());
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());

    // wipe the phone through EDS
    env.phone.book().remove_contacts(&contact_uids).await.unwrap();
    for l in [&cal, &tasks_l, &memos_l] {
        l.remove_all().await.unwrap();
        assert!(l.list_raw().await.unwrap().is_empty());
    }
    assert!(env.phone.book().list_uids().await.unwrap().is_empty());

    let o = sync.run_restore(&[], JOB_TIMEOUT).await.unwrap();
    eprintln!("restore: {:.1}s", o.duration.as_secs_f64());
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let kind: String = sync.job(&o.path).await.unwrap().get_property("Kind").await.unwrap();
    assert_eq!(kind, "restore");
    // a series' master and each moved occurrence are items of their own
    let n_events: u64 = events.iter().map(|s| 1 + s.instances.len() as u64).sum();
    for (class, n) in [("contacts", 60), ("calendar", n_events), ("tasks", 20), ("notes", 20)] {
        let c = o.report.class(class);
        assert_eq!((c.added, c.replaced, c.deleted, c.failed), (n, 0, 0, 0), "{class}: {}", describe(&o));
    }

    // field by field
    assert_phone_contacts(&env, &contacts, true).await;
    let (series_problems, other) = calendar_problems(&cal, &events).await;
    calendar::assert_no_problems("events on the phone after the restore", &other, &env.daemon_log_tail());
    let (_, task_problems) = calendar_problems(&tasks_l, &tasks).await;
    calendar::assert_no_problems("tasks on the phone after the restore", &task_problems, "");
    calendar::assert_no_problems("memos on the phone after the restore", &memo_problems(&memos_l, &memos).await, "");

    // the next backup has nothing to send
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("backup after the restore: {:.1}s, {} messages", o.duration.as_secs_f64(), o.report.raw["messages"]);
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    for class in classes {
        let c = o.report.class(class);
        assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 0, 0, 0), "{class}: {}", describe(&o));
    }
    let sessions: Vec<&str> = classes.iter().copied().filter(|c| o.report.class(c).mode != "none").collect();
    if !sessions.is_empty() {
        eprintln!("NOTE: classes {sessions:?} still needed a session after the restore: {}", describe(&o));
    }
    assert!(sessions.is_empty(), "after a restore no class should need a session: {}", describe(&o));
    env.assert_no_secrets_leaked(&env.phone);
    calendar::assert_no_problems("series with a moved occurrence after backup + restore", &series_problems, "");
}

/// 5. Merge keeps the phone's own newer contacts and brings the server's
///    back; replace makes the phone equal the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_keeps_the_phones_own_contacts_replace_makes_it_equal_the_server() {
    let env = TestEnv::new("restore-merge").await.unwrap();
    let backed_up = env.contacts(30);
    let uids = env.phone.seed(&backed_up).await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&env.account()).await.expect("SetAccount");
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    env.assert_server_contacts(&backed_up, true);

    // the phone loses 10 of them and gets 10 of its own (never backed up)
    env.phone.book().remove_contacts(&uids[..10]).await.unwrap();
    let mut own = env.contacts_range(1000, 10);
    for s in &mut own {
        s.rename_family(" Neu");
    }
    env.phone.seed(&own).await.unwrap();

    let o = sync.run_restore(&["contacts"], JOB_TIMEOUT).await.unwrap();
    eprintln!("merge restore: {}", describe(&o));
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.deleted, c.failed), (10, 0, 0), "{}", describe(&o));
    let all: Vec<ContactSpec> = backed_up.iter().chain(&own).cloned().collect();
    assert_phone_contacts(&env, &all, true).await;

    // replace: the phone's own 10 go, the phone equals the server
    let mut opts = sync1::Dict::new();
    opts.insert("mode".into(), sync1::s("replace"));
    opts.insert("classes".into(), sync1::strings(&["contacts"]));
    let o = sync.run_restore_with(&opts, JOB_TIMEOUT).await.unwrap();
    eprintln!("replace restore: {}", describe(&o));
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.deleted, c.failed), (0, 10, 0), "{}", describe(&o));
    assert_phone_contacts(&env, &backed_up, true).await;
    assert_eq!(env.phone.book().list_uids().await.unwrap().len(), 30);
    env.assert_server_contacts(&backed_up, true);

    // and a backup afterwards sends nothing
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", describe(&o));
    let c = o.report.class("contacts");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 0, 0, 0), "{}", describe(&o));
    env.assert_server_contacts(&backed_up, true);
}
