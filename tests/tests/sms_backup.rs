//! SMS backup and restore through the real ModemManager (fake AT modem rig), the real
//! daemon and the SyncEvolution server (`sms` database, which keeps items byte for byte).
//!
//! 1. back up the rig's 9 messages: every server item equals its hand-written golden
//!    vMessage (`service/src/item/testdata/vmessage/`);
//! 2. two new messages arrive (one multipart): exactly 2 added;
//! 3. ModemManager restarts (the `SMS/N` paths name other messages): 0 added;
//! 4. the modem is emptied, `Restore(["sms"])`: the modem holds every message again (as
//!    drafts: ModemManager can only store SMS-SUBMIT), and the next backup adds nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::modem::{initial_messages, pdu, ModemRig};
use harness::sync1::{b, s, JobOutcome};
use harness::{EnvOptions, JobWatcher, PhoneOptions, TestEnv};

const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../service/src/item/testdata/vmessage")
}

/// Golden file of each initial test message, in template order.
const GOLDEN: [&str; 9] = [
    "gsm7-inbox",
    "ucs2-chinese",
    "concatenated",
    "gsm7-extension",
    "sent",
    "emoji-utc",
    "draft",
    "alphanumeric-half-hour",
    "binary",
];

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

fn sms_account(env: &TestEnv) -> harness::sync1::Dict {
    let mut a = env.account();
    for c in harness::sync1::CLASSES {
        a.insert(format!("{c}.enabled"), b(*c == "sms"));
    }
    a.insert("sms.uri".into(), s("sms"));
    a.insert("sms.mode".into(), s("two-way"));
    a
}

fn text_of(p: &pdu::Decoded) -> String {
    match &p.body {
        pdu::Body::Text(t) => t.clone(),
        pdu::Body::Data(d) => format!("{d:02x?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_backup_new_messages_restart_restore() {
    let opts = EnvOptions {
        phone: PhoneOptions {
            start_daemon: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut env = TestEnv::with_options("sms-backup", opts).await.unwrap();
    let t = Instant::now();
    let mut rig = ModemRig::start(env.root(), &env.root().join("modem"), 9)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "modem rig ready in {:.2}s ({:?})",
        t.elapsed().as_secs_f64(),
        rig.timings
    );
    env.phone
        .daemon
        .set_env("DBUS_SYSTEM_BUS_ADDRESS", rig.bus_address());
    env.phone.daemon.start().await.unwrap();
    let sync = env.phone.sync1().await.unwrap();
    sync.set_account(&sms_account(&env))
        .await
        .expect("SetAccount");

    // --- 1. first backup: 9 messages, byte for byte
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    eprintln!("first backup: {:.2}s", o.duration.as_secs_f64());
    assert_eq!(
        o.state,
        "succeeded",
        "{}\n{}",
        describe(&o),
        env.daemon_log_tail()
    );
    let c = o.report.class("sms");
    assert_eq!(
        (c.added, c.failed, c.error.as_str()),
        (9, 0, ""),
        "{}",
        describe(&o)
    );
    let items = env.server().items("sms");
    assert_eq!(items.len(), 9);
    let mut missing = vec![];
    for name in GOLDEN {
        let want = std::fs::read(golden_dir().join(format!("{name}.vmg"))).unwrap();
        if !items.iter().any(|(_, data)| *data == want) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        let stored: Vec<String> = items
            .iter()
            .map(|(n, d)| format!("--- {n}\n{}", String::from_utf8_lossy(d).escape_debug()))
            .collect();
        panic!(
            "no server item equals the golden file(s) {missing:?}; the server holds:\n{}",
            stored.join("\n")
        );
    }
    assert_eq!(initial_messages(9).len(), GOLDEN.len());

    // --- 2. two new messages (one in 2 parts) while everything runs
    let long = "A new long message that arrives in two parts, because it is longer than one hundred and sixty characters of the GSM alphabet. Reassembled by ModemManager, backed up as one.";
    rig.deliver("+15557770001", "New message one")
        .await
        .unwrap();
    rig.deliver("+15557770002", long).await.unwrap();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", describe(&o));
    let c = o.report.class("sms");
    assert_eq!(
        (c.added, c.replaced, c.deleted, c.failed),
        (2, 0, 0, 0),
        "{}",
        describe(&o)
    );
    let items = env.server().items("sms");
    assert_eq!(items.len(), 11);
    assert!(
        items
            .iter()
            .any(|(_, d)| String::from_utf8_lossy(d).contains(long)),
        "the multipart message is not one item"
    );

    // --- 3. ModemManager restarts: new SMS/N objects, same messages
    let t = Instant::now();
    rig.restart_modem_manager(11).await.unwrap();
    eprintln!(
        "ModemManager restarted in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", describe(&o));
    let c = o.report.class("sms");
    assert_eq!(
        (c.added, c.replaced, c.deleted, c.failed),
        (0, 0, 0, 0),
        "{}",
        describe(&o)
    );
    assert_eq!(env.server().item_count("sms"), 11);

    // --- 4. empty the modem, restore, back up again
    assert_eq!(rig.delete_all().await.unwrap(), 11);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rig.stored().is_empty());
    let watcher = JobWatcher::new(sync.connection()).await.unwrap();
    let job = sync
        .proxy()
        .call_method("Restore", &(vec!["sms"],))
        .await
        .expect("Restore");
    let job: zbus::zvariant::OwnedObjectPath = job.body().deserialize().unwrap();
    let o = sync
        .wait_job(&watcher, job.as_str(), JOB_TIMEOUT)
        .await
        .unwrap();
    eprintln!("restore: {:.2}s", o.duration.as_secs_f64());
    // the message from the alphanumeric sender "Vendor" cannot be addressed by an SMS-SUBMIT:
    // reported as failed, the rest is restored
    assert_eq!(
        o.state,
        "partial",
        "{}\n{}",
        describe(&o),
        env.daemon_log_tail()
    );
    let c = o.report.class("sms");
    assert_eq!((c.added, c.failed), (10, 1), "{}", describe(&o));
    assert!(
        c.errors
            .iter()
            .any(|e| e.contains("'Vendor' is an alphanumeric sender")),
        "{}",
        describe(&o)
    );

    // what the modem holds: 10 messages as SMS-SUBMIT drafts (STO UNSENT), multipart ones
    // in several PDUs, to the original numbers with the original texts / data
    let stored = rig.stored();
    let decoded: Vec<pdu::Decoded> = stored
        .iter()
        .map(|st| pdu::decode(&st.pdu).unwrap_or_else(|| panic!("{st:?}")))
        .collect();
    assert!(stored.iter().all(|st| st.stat == 2), "{stored:?}");
    assert!(decoded.iter().all(|d| d.submit && d.timestamp.is_none()));
    let mut got: Vec<(String, String)> = vec![];
    let mut parts: std::collections::BTreeMap<(String, u16), Vec<(u8, String)>> =
        Default::default();
    for d in &decoded {
        match d.concat {
            Some((r, _, seq)) => parts
                .entry((d.number.clone(), r))
                .or_default()
                .push((seq, text_of(d))),
            None => got.push((d.number.clone(), text_of(d))),
        }
    }
    for ((number, _), mut p) in parts {
        p.sort();
        got.push((number, p.into_iter().map(|(_, t)| t).collect()));
    }
    let mut want: Vec<(String, String)> = initial_messages(9)
        .iter()
        .map(|m| {
            let body = match &m.body {
                pdu::Body::Text(t) => t.clone(),
                pdu::Body::Data(d) => format!("{d:02x?}"),
            };
            (m.number.clone(), body)
        })
        .collect();
    want.retain(|(n, _)| n != "Vendor");
    want.push(("+15557770001".into(), "New message one".into()));
    want.push(("+15557770002".into(), long.into()));
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}", describe(&o));
    let c = o.report.class("sms");
    assert_eq!(
        (c.added, c.replaced, c.deleted, c.failed),
        (0, 0, 0, 0),
        "{}",
        describe(&o)
    );
    assert_eq!(env.server().item_count("sms"), 11);

    // and after another ModemManager restart (restored drafts listed anew)
    rig.restart_modem_manager(10).await.unwrap();
    let o = sync.run_backup(JOB_TIMEOUT).await.unwrap();
    let c = o.report.class("sms");
    assert_eq!(
        (o.state.as_str(), c.added, c.replaced, c.deleted),
        ("succeeded", 0, 0, 0),
        "{}",
        describe(&o)
    );
    env.phone.shutdown();
    rig.stop();
}
