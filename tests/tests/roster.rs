//! The IM friend list (roster) as the `roster` class: 300 friends with groups are backed up
//! as vCards, a rename and a removal go out as exactly one replace and one delete, and a
//! fresh phone (new daemon state, same account and server) gets the list and the account's
//! display name back with `Restore(["roster"])`, announced by `RosterRestored`.

mod common;

use common::{describe, get_roster, run_job, set_roster, Entry, SignalLog};
use harness::sync1::{self, classes_account};
use harness::{PhoneOptions, TestEnv};
use zbus::zvariant::Value;

const ACCOUNT: &str = "xmpp:alice@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_of_300_backed_up_incrementally_and_restored_on_a_new_phone() {
    let env = TestEnv::new("roster").await.unwrap();
    let srv = env.server();
    env.remember_secret(srv.username(), srv.password());
    let sync = env.phone.sync1().await.unwrap();
    let mut settings = classes_account(srv.url(), srv.username(), srv.password(), &["roster"]);
    settings.insert("display_name".into(), sync1::s("Alice Liddell"));
    sync.set_account(&settings).await.expect("SetAccount");

    // bad entries are refused, naming the entry
    let bad = vec![std::collections::HashMap::from([("im_id", Value::from("x@y")), ("subscription", Value::from("mutual"))])];
    let e = sync.proxy().call::<_, _, ()>("SetRoster", &(ACCOUNT, bad)).await.unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{e}");
    assert!(sync1::error_message(&e).contains("entries[0].subscription"), "{e}");
    let e = sync.proxy().call::<_, _, ()>("SetRoster", &("xmpp:nobody@x", common::entries_dbus(&[]))).await.unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.NoSuchAccount"), "{e}");

    let mut roster = common::roster(300, &env.run_id);
    assert!(roster.iter().filter(|e| e.groups.len() >= 2).count() > 50);
    set_roster(&sync, ACCOUNT, &roster).await;
    assert_eq!(get_roster(&sync, ACCOUNT).await, roster, "GetRoster returns what SetRoster stored");
    assert_eq!(get_roster(&sync, "").await, roster, "'' is the default account");

    // --- first backup: 300 friends + the account's own card
    let o = sync.run_backup(common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("roster");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (301, 0, 0, 0), "{}", describe(&o));
    assert_eq!(srv.item_count("roster"), 301);
    let cards = env.server_contacts("roster");
    let own: Vec<_> = cards.iter().filter(|(_, c)| c.text("X-IMSYNC-SELF").as_deref() == Some("1")).collect();
    assert_eq!(own.len(), 1, "one card of the account itself");
    assert_eq!(own[0].1.text("FN").as_deref(), Some("Alice Liddell"));
    assert_eq!(own[0].1.text("IMPP").as_deref(), Some(ACCOUNT));
    let sample = &roster[7];
    let (_, card) = cards
        .iter()
        .find(|(_, c)| c.text("IMPP").as_deref() == Some(&format!("xmpp:{}", sample.im_id)))
        .expect("a friend's card on the server");
    assert_eq!(card.text("FN").as_deref(), Some(if sample.name.is_empty() { sample.im_id.as_str() } else { sample.name.as_str() }));
    let mut groups = card.first("CATEGORIES").map(|p| p.list()).unwrap_or_default();
    groups.sort();
    assert_eq!(groups, sample.groups);
    assert_eq!(card.text("X-IMSYNC-SUBSCRIPTION").as_deref(), Some(sample.subscription.as_str()));

    // unchanged: nothing is sent
    let o = sync.run_backup(common::JOB_TIMEOUT).await.unwrap();
    let c = o.report.class("roster");
    assert_eq!((c.added, c.replaced, c.deleted, c.mode.as_str()), (0, 0, 0, "none"), "{}", describe(&o));

    // --- one renamed, one removed (SetRoster takes the whole list)
    roster[10].name = "Renamed Friend".into();
    let removed: Entry = roster.remove(20);
    set_roster(&sync, ACCOUNT, &roster).await;
    let o = sync.run_backup(common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    let c = o.report.class("roster");
    assert_eq!((c.added, c.replaced, c.deleted, c.failed), (0, 1, 1, 0), "{}", describe(&o));
    assert_eq!(srv.item_count("roster"), 300);
    let cards = env.server_contacts("roster");
    assert!(cards.iter().any(|(_, c)| c.text("FN").as_deref() == Some("Renamed Friend")));
    assert!(!cards.iter().any(|(_, c)| c.text("IMPP").as_deref() == Some(&format!("xmpp:{}", removed.im_id))));

    // --- a new phone: fresh daemon state, the same account and server
    let phone_b = env.new_phone("p2", &PhoneOptions::default()).await.unwrap();
    let sync_b = phone_b.sync1().await.unwrap();
    let mut fresh = classes_account(srv.url(), srv.username(), srv.password(), &["roster"]);
    fresh.remove("display_name");
    sync_b.set_account(&fresh).await.expect("SetAccount on the new phone");
    assert!(get_roster(&sync_b, ACCOUNT).await.is_empty());
    let restored = SignalLog::new(sync_b.connection(), "RosterRestored").await;
    let o = run_job(&sync_b, sync_b.proxy(), "Restore", &(vec!["roster"],)).await;
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), phone_b.daemon.log_tail(6000));
    assert!(restored.wait_for(ACCOUNT).await, "no RosterRestored({ACCOUNT}); seen {:?}", restored.seen());
    let got = get_roster(&sync_b, ACCOUNT).await;
    let diff: Vec<_> = roster.iter().filter(|e| !got.contains(e)).take(5).collect();
    assert!(diff.is_empty(), "restored roster differs, e.g. {diff:#?}\nfirst restored: {:#?}", &got[..got.len().min(3)]);
    assert_eq!(got, roster, "GetRoster after the restore equals the backed-up roster");
    let acc = common::account_named(&sync_b, ACCOUNT).await;
    let display_name: String = acc.get_property("DisplayName").await.unwrap();
    assert_eq!(display_name, "Alice Liddell", "the identity came back with the roster");

    // and the next backup from the new phone has nothing to send
    let o = sync_b.run_backup(common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), phone_b.daemon.log_tail(6000));
    let c = o.report.class("roster");
    assert_eq!((c.added, c.replaced, c.deleted), (0, 0, 0), "{}", describe(&o));
    assert_eq!(srv.item_count("roster"), 300);

    env.assert_no_secrets_leaked(&env.phone);
    env.assert_no_secrets_leaked(&phone_b);
}
