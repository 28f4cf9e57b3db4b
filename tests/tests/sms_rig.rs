//! The SMS test rig itself: the fake AT modem (Rust) under the real ModemManager shows
//! every test message with exactly the properties ModemManager 1.20 gives such messages,
//! delivers new ones, survives a ModemManager restart and takes restores (AT+CMGW).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use harness::modem::{initial_messages, pdu, Kind, ModemRig};
use zbus::zvariant::OwnedValue;

fn get<T: TryFrom<OwnedValue>>(p: &HashMap<String, OwnedValue>, k: &str) -> T {
    T::try_from(
        p.get(k)
            .unwrap_or_else(|| panic!("no {k}"))
            .try_clone()
            .unwrap(),
    )
    .unwrap_or_else(|_| panic!("{k}: type"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_manager_sees_the_fake_modems_messages() {
    let dir = tempfile::Builder::new()
        .prefix("imt-sms-rig-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let t0 = Instant::now();
    let mut rig = ModemRig::start(&root, &root.join("m"), 9)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "rig ready in {:.2}s: {:?}",
        t0.elapsed().as_secs_f64(),
        rig.timings
    );

    let expected = initial_messages(9);
    let listed = rig.messages().await.unwrap();
    assert_eq!(listed.len(), 9);
    let mut problems = vec![];
    for m in &expected {
        let data: Vec<u8> = match &m.body {
            pdu::Body::Data(d) => d.clone(),
            pdu::Body::Text(_) => vec![],
        };
        let found = listed.iter().find(|p| {
            get::<String>(p, "Text") == m.text()
                && get::<Vec<u8>>(p, "Data") == data
                && get::<String>(p, "Number") == m.number
        });
        let Some(p) = found else {
            problems.push(format!("not listed: {} {:?}", m.number, m.body));
            continue;
        };
        let got = (
            get::<u32>(p, "State"),
            get::<u32>(p, "PduType"),
            get::<String>(p, "Timestamp"),
            get::<u32>(p, "Storage"),
            get::<String>(p, "SMSC"),
        );
        let smsc = if m.kind == Kind::Deliver {
            "+15550000000"
        } else {
            ""
        };
        let want = (
            m.mm_state(),
            m.mm_pdu_type(),
            m.mm_timestamp(),
            m.storage.mm_value(),
            smsc.to_string(),
        );
        if got != want {
            problems.push(format!("{}: got {got:?}, want {want:?}", m.number));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // a new single-part and a new 2-part message
    let t = Instant::now();
    rig.deliver("+15557770001", "Fresh message").await.unwrap();
    rig.deliver("+15557770002", &"Long fresh message ".repeat(10))
        .await
        .unwrap();
    eprintln!("2 deliveries in {:.2}s", t.elapsed().as_secs_f64());
    let listed = rig.messages().await.unwrap();
    assert_eq!(listed.len(), 11);
    assert!(listed
        .iter()
        .any(|p| get::<String>(p, "Text") == "Long fresh message ".repeat(10)));

    // restart: same messages under other paths
    let texts = |m: Vec<HashMap<String, OwnedValue>>| {
        m.iter()
            .map(|p| get::<String>(p, "Text"))
            .collect::<Vec<_>>()
    };
    let old = texts(rig.messages().await.unwrap());
    let t = Instant::now();
    rig.restart_modem_manager(11).await.unwrap();
    eprintln!("ModemManager restart in {:.2}s", t.elapsed().as_secs_f64());
    let new = texts(rig.messages().await.unwrap());
    assert_eq!(new.len(), 11);
    assert_ne!(
        old, new,
        "the SMS/N paths should name other messages after the restart"
    );
    let (mut a, mut b) = (old.clone(), new.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // Create + Store writes a SUBMIT with AT+CMGW
    let modem = rig.modem_path().to_string();
    let mut props: HashMap<&str, zbus::zvariant::Value> = HashMap::new();
    props.insert("number", "+8613800138000".into());
    props.insert("text", "恢复的短信 restored".into());
    let reply = rig
        .connection()
        .call_method(
            Some("org.freedesktop.ModemManager1"),
            modem.as_str(),
            Some("org.freedesktop.ModemManager1.Modem.Messaging"),
            "Create",
            &(props,),
        )
        .await
        .unwrap();
    let path: zbus::zvariant::OwnedObjectPath = reply.body().deserialize().unwrap();
    rig.connection()
        .call_method(
            Some("org.freedesktop.ModemManager1"),
            path.as_str(),
            Some("org.freedesktop.ModemManager1.Sms"),
            "Store",
            &(0u32,),
        )
        .await
        .unwrap();
    let written = rig.modem().written();
    assert_eq!(written.len(), 1);
    let d = pdu::decode(&written[0]).unwrap();
    assert!(d.submit);
    assert_eq!(
        (d.number.as_str(), d.body),
        (
            "+8613800138000",
            pdu::Body::Text("恢复的短信 restored".into())
        )
    );

    assert_eq!(rig.delete_all().await.unwrap(), 12);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rig.stored().is_empty(), "{:?}", rig.stored());
    rig.stop();
}
