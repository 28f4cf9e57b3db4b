//! Several IM accounts, each its own sync profile on the bus (`org.imsync.Account1` under
//! `/org/imsync/Sync1/Account/N`, announced by `org.freedesktop.DBus.ObjectManager`):
//! - an xmpp and a matrix account with different servers: `Backup()` on each account object
//!   reaches only that account's server; `Sync1` methods follow the default account
//!   (`IsDefault`, moved with `is_default`);
//! - `Update` (no identity change), `PropertiesChanged`, `AccountChanged` when the server or
//!   the credentials change (and no data goes to the new server by itself), `Remove`
//!   (forgets the password, InterfacesRemoved), `auto_backup` on creation (a slow sync);
//! - passwords: one Secret Service item per account with the documented attributes, never in
//!   the state database, the properties, GetAccount or the logs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{account, account_named, describe, list_accounts, run_job, set_roster, SignalLog};
use futures_util::StreamExt;
use harness::daemon::{SYNC1_NAME, SYNC1_PATH};
use harness::sync1::{self, classes_account};
use harness::{SyncmlServer, TestEnv};
use zbus::zvariant::Value;

const XMPP: &str = "xmpp:alice@example.org";
const MATRIX: &str = "matrix:@alice:example.org";
const SIP: &str = "sip:carol@example.org";

fn settings_for(protocol: &str, im_id: &str, srv: &SyncmlServer) -> sync1::Dict {
    let mut d = classes_account(srv.url(), srv.username(), srv.password(), &["roster"]);
    d.insert("protocol".into(), sync1::s(protocol));
    d.insert("im_id".into(), sync1::s(im_id));
    d.insert("display_name".into(), sync1::s(&format!("Alice on {protocol}")));
    d
}

/// Names of the properties announced in PropertiesChanged on `path`.
async fn watch_properties(conn: &zbus::Connection, path: &str) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(SYNC1_NAME)
        .unwrap()
        .path(path.to_string())
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut stream = props.receive_properties_changed().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        let _keep = props;
        while let Some(sig) = stream.next().await {
            if let Ok(a) = sig.args() {
                let mut v = s2.lock().unwrap();
                v.extend(a.changed_properties().keys().map(|k| k.to_string()));
                v.extend(a.invalidated_properties().iter().map(|k| k.to_string()));
            }
        }
    });
    (seen, task)
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..50 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not seen within 5 s: {what}");
}

fn roster_cards_for(env: &TestEnv, srv: &SyncmlServer, db: &str, protocol: &str) -> usize {
    let _ = env;
    srv.items(db)
        .iter()
        .filter(|(_, b)| String::from_utf8_lossy(b).contains(&format!("IMPP:{protocol}:")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_two_servers_default_updates_removal_and_secrets() {
    let env = TestEnv::new("accounts").await.unwrap();
    let (root, dir) = (env.root().to_path_buf(), env.root().join("s2"));
    let srv_b_owned = tokio::task::spawn_blocking(move || SyncmlServer::start(&root, &dir)).await.unwrap().unwrap();
    let srv_b = &srv_b_owned;
    let srv_a = env.server();
    env.remember_secret(srv_a.username(), srv_a.password());
    env.remember_secret(srv_b.username(), srv_b.password());
    let conn = env.phone.connection().clone();
    let sync = env.phone.sync1().await.unwrap();

    let om = zbus::fdo::ObjectManagerProxy::builder(&conn).destination(SYNC1_NAME).unwrap().path(SYNC1_PATH).unwrap().build().await.unwrap();
    let mut added = om.receive_interfaces_added().await.unwrap();
    let mut removed = om.receive_interfaces_removed().await.unwrap();

    // --- two accounts, two servers
    sync.set_account(&settings_for("xmpp", "alice@example.org", srv_a)).await.expect("SetAccount xmpp");
    sync.set_account(&settings_for("matrix", "@alice:example.org", srv_b)).await.expect("SetAccount matrix");
    let paths = list_accounts(&sync).await;
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.iter().all(|p| p.starts_with("/org/imsync/Sync1/Account/")), "{paths:?}");
    for _ in 0..2 {
        let sig = harness::timeout(Duration::from_secs(5), added.next()).await.unwrap().expect("InterfacesAdded");
        let a = sig.args().unwrap();
        assert!(paths.contains(&a.object_path().to_string()), "{:?}", a.object_path());
        assert!(a.interfaces_and_properties().keys().any(|i| i.as_str() == common::ACCOUNT1_IFACE));
    }
    let managed = om.get_managed_objects().await.unwrap();
    for p in &paths {
        let ifaces = managed.iter().find(|(k, _)| k.as_str() == p).map(|(_, v)| v).expect("managed account object");
        let props = ifaces.iter().find(|(k, _)| k.as_str() == common::ACCOUNT1_IFACE).map(|(_, v)| v).expect("Account1");
        for key in ["Protocol", "ImId", "Name", "DisplayName", "ServerUrl", "Username", "Classes", "IsDefault"] {
            assert!(props.contains_key(key), "{key} missing in {props:?}");
        }
    }
    let xmpp = account_named(&sync, XMPP).await;
    let matrix = account_named(&sync, MATRIX).await;
    assert!(xmpp.get_property::<bool>("IsDefault").await.unwrap(), "the first account is the default");
    assert!(!matrix.get_property::<bool>("IsDefault").await.unwrap());
    assert_eq!(matrix.get_property::<String>("ImId").await.unwrap(), "@alice:example.org");
    assert_eq!(matrix.get_property::<String>("Protocol").await.unwrap(), "matrix");
    assert_eq!(matrix.get_property::<String>("ServerUrl").await.unwrap(), srv_b.url());
    let classes: std::collections::HashMap<String, zbus::zvariant::OwnedValue> = matrix.get_property("Classes").await.unwrap();
    assert!(bool::try_from(&classes["roster.enabled"]).unwrap());
    assert!(!bool::try_from(&classes["contacts.enabled"]).unwrap());
    assert_eq!(sync.get_account_json().await.unwrap()["account"], XMPP);

    let xmpp_roster = common::roster(12, "x");
    let matrix_roster = common::roster(7, "m");
    set_roster(&sync, XMPP, &xmpp_roster).await;
    set_roster(&sync, MATRIX, &matrix_roster).await;

    // Backup() on each account object reaches only its own server
    let o = run_job(&sync, &matrix, "Backup", &()).await;
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert_eq!(o.report.class("roster").added, 8, "{}", describe(&o));
    assert_eq!((srv_a.item_count("roster"), srv_b.item_count("roster")), (0, 8));
    let o = run_job(&sync, &xmpp, "Backup", &()).await;
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert_eq!((srv_a.item_count("roster"), srv_b.item_count("roster")), (13, 8));
    assert_eq!(roster_cards_for(&env, srv_a, "roster", "matrix"), 0);
    assert_eq!(roster_cards_for(&env, srv_b, "roster", "xmpp"), 0);

    // --- the default follows IsDefault: Sync1.Backup() is the default account's
    let (xmpp_props, t1) = watch_properties(&conn, xmpp.path().as_str()).await;
    let (matrix_props, t2) = watch_properties(&conn, matrix.path().as_str()).await;
    let e = sync
        .set_account_values([("protocol", Value::from("xmpp")), ("im_id", Value::from("alice@example.org")), ("is_default", Value::from(false))].into())
        .await
        .unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{e}");
    matrix.call::<_, _, ()>("Update", &(std::collections::HashMap::from([("is_default", Value::from(true))]),)).await.expect("Update is_default");
    assert!(matrix.get_property::<bool>("IsDefault").await.unwrap());
    assert!(!xmpp.get_property::<bool>("IsDefault").await.unwrap());
    eventually("IsDefault changed on both objects", || {
        xmpp_props.lock().unwrap().contains(&"IsDefault".to_string()) && matrix_props.lock().unwrap().contains(&"IsDefault".to_string())
    })
    .await;
    assert_eq!(sync.get_account_json().await.unwrap()["account"], MATRIX);
    set_roster(&sync, "", &common::roster(8, "m")).await; // '' = the default account, now matrix: one more friend
    let o = sync.run_backup(common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert_eq!(o.report.raw["account"], MATRIX);
    let c = o.report.class("roster");
    assert_eq!((c.added, c.replaced, c.deleted), (1, 0, 0), "{}", describe(&o));
    assert_eq!((srv_a.item_count("roster"), srv_b.item_count("roster")), (13, 9));

    // --- Update: no identity change; display name → PropertiesChanged
    let e = xmpp
        .call::<_, _, ()>("Update", &(std::collections::HashMap::from([("protocol", Value::from("sip")), ("im_id", Value::from("x"))]),))
        .await
        .unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{e}");
    xmpp.call::<_, _, ()>("Update", &(std::collections::HashMap::from([("display_name", Value::from("Alice X."))]),)).await.unwrap();
    assert_eq!(xmpp.get_property::<String>("DisplayName").await.unwrap(), "Alice X.");
    eventually("DisplayName changed", || xmpp_props.lock().unwrap().contains(&"DisplayName".to_string())).await;

    // --- a new server for an existing account: logged, AccountChanged, nothing sent there
    let changed = SignalLog::new(&conn, "AccountChanged").await;
    let history_before = sync.history(100).await.unwrap().len();
    let items_b = srv_b.item_count("roster");
    xmpp.call::<_, _, ()>(
        "Update",
        &(std::collections::HashMap::from([("server_url", Value::from(srv_b.url())), ("username", Value::from(srv_b.username()))]),),
    )
    .await
    .unwrap();
    assert!(changed.wait_for(XMPP).await, "no AccountChanged({XMPP}): {:?}", changed.seen());
    eventually("ServerUrl changed", || xmpp_props.lock().unwrap().contains(&"ServerUrl".to_string())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sync.history(100).await.unwrap().len(), history_before, "no job may start by itself");
    assert_eq!(srv_b.item_count("roster"), items_b);
    let log = env.phone.daemon.logs();
    assert!(log.contains("account server or credentials changed"), "the change is logged");
    // a display-name-only change is no credentials change
    xmpp.call::<_, _, ()>("Update", &(std::collections::HashMap::from([("display_name", Value::from("Alice"))]),)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(changed.seen().iter().filter(|a| *a == XMPP).count(), 1, "{:?}", changed.seen());

    // --- auto_backup: a new account is backed up right away, as a slow sync
    let mut sip = settings_for("sip", "carol@example.org", srv_a);
    sip.insert("roster.uri".into(), sync1::s("contacts"));
    sip.insert("auto_backup".into(), sync1::b(true));
    let watcher = harness::JobWatcher::new(&conn).await.unwrap();
    sync.set_account(&sip).await.expect("SetAccount with auto_backup");
    let jobs = sync.jobs().await.unwrap();
    let job = jobs.last().expect("auto_backup started a job").to_string();
    let o = sync.wait_job(&watcher, &job, common::JOB_TIMEOUT).await.unwrap();
    assert_eq!(o.state, "succeeded", "{}\n{}", describe(&o), env.daemon_log_tail());
    assert_eq!(o.report.raw["account"], SIP);
    assert_eq!(o.report.class("roster").mode, "slow", "{}", describe(&o));
    assert_eq!(srv_a.item_count("contacts"), 1, "the new account's own card");
    let mut no_server = settings_for("sip", "dave@example.org", srv_a);
    no_server.insert("server_url".into(), sync1::s(""));
    no_server.insert("auto_backup".into(), sync1::b(true));
    let e = sync.set_account(&no_server).await.unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.InvalidArgs"), "{e}");
    assert_eq!(list_accounts(&sync).await.len(), 3, "a refused SetAccount stores nothing");

    // --- secrets: one item per account, documented attributes; nowhere else
    for (name, srv) in [(XMPP, srv_a), (MATRIX, srv_b), (SIP, srv_a)] {
        let found = harness::keyring::search_secrets(&conn, &[("application", "imsync"), ("account", name)]).await.unwrap();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].label, format!("imsync sync password for {name}"));
        assert_eq!(found[0].secret, srv.password().as_bytes(), "{name}");
    }
    let managed = format!("{:?}", om.get_managed_objects().await.unwrap());
    let account_dump = format!("{:?}", sync.get_account().await.unwrap());
    for srv in [srv_a, srv_b] {
        assert!(!managed.contains(srv.password()), "password in the account properties");
        assert!(!account_dump.contains(srv.password()), "password in GetAccount");
    }
    assert_eq!(sync.get_account_json().await.unwrap()["has_password"], true);

    // --- Remove: object, settings, state and password gone; the default moves on
    let matrix_path = matrix.path().to_string();
    matrix.call::<_, _, ()>("Remove", &()).await.expect("Remove");
    loop {
        let sig = harness::timeout(Duration::from_secs(5), removed.next()).await.unwrap().expect("InterfacesRemoved");
        if sig.args().unwrap().object_path().as_str() == matrix_path {
            break;
        }
    }
    assert!(!list_accounts(&sync).await.contains(&matrix_path));
    let found = harness::keyring::search_secrets(&conn, &[("application", "imsync"), ("account", MATRIX)]).await.unwrap();
    assert!(found.is_empty(), "the password of a removed account is forgotten: {found:?}");
    assert_eq!(sync.get_account_json().await.unwrap()["account"], XMPP, "the oldest account is the default again");
    assert!(xmpp.get_property::<bool>("IsDefault").await.unwrap());
    let e = sync.proxy().call::<_, _, Vec<common::Dict>>("GetRoster", &(MATRIX,)).await.unwrap_err();
    assert_eq!(sync1::error_name(&e).as_deref(), Some("org.imsync.Error.NoSuchAccount"), "{e}");
    // the account comes back empty: no roster, no sync state
    sync.set_account(&settings_for("matrix", "@alice:example.org", srv_b)).await.unwrap();
    assert!(common::get_roster(&sync, MATRIX).await.is_empty());
    let again = account_named(&sync, MATRIX).await;
    assert_ne!(again.path().as_str(), matrix_path, "a new row, a new object");
    let _ = account(&conn, again.path().as_str()).await;

    t1.abort();
    t2.abort();
    env.assert_no_secrets_leaked(&env.phone);
    let db = std::fs::read(env.phone.daemon.dirs().all().iter().map(|d| d.join("imsync/state.db")).find(|p| p.exists()).expect("state.db"))
        .unwrap();
    for srv in [srv_a, srv_b] {
        assert!(!db.windows(srv.password().len()).any(|w| w == srv.password().as_bytes()), "password in state.db");
    }
    drop(srv_b_owned);
}
