//! The harness on its own (no imsyncd needed): private bus + real EDS,
//! SyncML server, gnome-keyring, process cleanup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use harness::vcard;
use harness::{process, EnvOptions, PhoneOptions, TestEnv};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

fn no_daemon(server: bool, keyring: bool) -> EnvOptions {
    EnvOptions { phone: PhoneOptions { keyring, start_daemon: false }, server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eds_seed_read_back_kill_factory_reopen() {
    let mut env = TestEnv::with_options("selftest-eds", no_daemon(false, false)).await.unwrap();
    let specs = env.contacts(60);
    let t = Instant::now();
    let uids = env.phone.seed(&specs).await.unwrap();
    eprintln!("seeded {} contacts in {:?}", uids.len(), t.elapsed());
    assert_eq!(uids.len(), 60);

    let listed = env.phone.book().list().await.unwrap();
    assert_eq!(listed.len(), 60);
    let by_key: HashMap<String, vcard::Contact> =
        listed.iter().map(|v| vcard::parse(v).unwrap()).map(|c| (c.key().expect("key"), c)).collect();
    let mut photos = 0;
    for spec in &specs {
        let got = &by_key[spec.key()];
        // EDS moves inline photos to files: compare everything but PHOTO here
        let mut expected = spec.contact();
        expected.props.retain(|p| p.name != "PHOTO");
        let mut actual = got.clone();
        let photo = actual.props.iter().find(|p| p.name == "PHOTO").cloned();
        actual.props.retain(|p| p.name != "PHOTO");
        let d = vcard::compare(&expected, &actual);
        assert!(d.is_empty(), "{}: {d:?}", spec.key());
        match (&spec.photo, photo) {
            (Some(png), Some(p)) => {
                let uri = p.value.strip_prefix("file://").unwrap_or_else(|| panic!("photo not a file URI: {}", p.value));
                assert_eq!(&std::fs::read(uri).unwrap(), png, "photo file of {}", spec.key());
                photos += 1;
            }
            (None, None) => {}
            (e, g) => panic!("{}: photo expected {} got {g:?}", spec.key(), e.is_some()),
        }
    }
    assert!(photos >= 5, "only {photos} photos");

    // modify one, remove one
    let mut edited = specs[0].clone();
    edited.edit("selftest");
    env.phone.book().modify_contacts(&[edited.to_vcard(Some(&uids[0]))]).await.unwrap();
    env.phone.book().remove_contacts(&[uids[1].clone()]).await.unwrap();
    let c = vcard::parse(&env.phone.book().get(&uids[0]).await.unwrap()).unwrap();
    assert!(vcard::compare(&edited.contact(), &c).is_empty());
    let rev_before = env.phone.book().revision().await.unwrap();

    // kill the factory; the old path is stale, reopening auto-starts a new one
    let t = Instant::now();
    let pid = env.phone.kill_addressbook_factory().await.unwrap().expect("a factory was running");
    eprintln!("killed factory {pid} in {:?}", t.elapsed());
    assert!(!process::alive(pid) || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err());
    assert!(env.phone.book().list_uids().await.is_err(), "stale book path still answers");
    let t = Instant::now();
    env.phone.book_mut().reopen().await.unwrap();
    eprintln!("reopened book in {:?}", t.elapsed());
    let uids_after = env.phone.book().list_uids().await.unwrap();
    assert_eq!(uids_after.len(), 59);
    assert_eq!(env.phone.book().revision().await.unwrap(), rev_before, "revision survives a factory restart");
    let new_pid = harness::bus::name_owner_pid(env.phone.connection(), harness::eds::BOOK_FACTORY_NAME).await.unwrap();
    assert!(new_pid.is_some_and(|p| p != pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncml_server_answers_and_stores_nothing_yet() {
    let env = TestEnv::with_options("selftest-server", no_daemon(true, false)).await.unwrap();
    let s = env.server();
    assert!(s.url().starts_with("http://127.0.0.1:"), "{}", s.url());
    assert_ne!(s.username(), s.password());
    assert_eq!(harness::syncml_server::http_get_status(s.url(), Duration::from_secs(5)).unwrap(), 200);
    for (db, _, _) in harness::syncml_server::DATABASES {
        assert!(s.db_dir(db).is_dir(), "{db}");
        assert_eq!(s.item_count(db), 0, "{db}");
    }
    assert!(s.clients().is_empty());
    let port = s.port();
    let root = env.root().to_path_buf();
    drop(env);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "server still listening");
    assert!(process::marked_pids(&root).is_empty(), "processes left: {:?}", process::marked_pids(&root));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_stores_and_finds_secrets() {
    let env = TestEnv::with_options("selftest-keyring", no_daemon(false, true)).await.unwrap();
    let conn = env.phone.connection();
    assert!(harness::bus::name_has_owner(conn, harness::keyring::SECRETS_NAME).await.unwrap());
    // store an item like a Secret Service client would (plain session, same connection)
    let svc = zbus::Proxy::new(conn, "org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service")
        .await
        .unwrap();
    let (_, session): (OwnedValue, OwnedObjectPath) = svc.call("OpenSession", &("plain", Value::from(""))).await.unwrap();
    let coll: OwnedObjectPath = svc.call("ReadAlias", &("default",)).await.unwrap();
    assert_ne!(coll.as_str(), "/", "no default collection");
    let c = zbus::Proxy::new(conn, "org.freedesktop.secrets", coll.clone(), "org.freedesktop.Secret.Collection").await.unwrap();
    let attrs: HashMap<&str, &str> = HashMap::from([("application", "imsync"), ("account", "selftest")]);
    let mut props: HashMap<&str, Value> = HashMap::new();
    props.insert("org.freedesktop.Secret.Item.Label", Value::from("selftest"));
    props.insert("org.freedesktop.Secret.Item.Attributes", Value::from(attrs));
    let secret = (session, Vec::<u8>::new(), b"s3cret-p\xc3\xa4ss".to_vec(), "text/plain");
    let (_item, prompt): (OwnedObjectPath, OwnedObjectPath) = c.call("CreateItem", &(props, secret, true)).await.unwrap();
    assert_eq!(prompt.as_str(), "/");
    let found = harness::keyring::search_secrets(conn, &[("application", "imsync")]).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].secret, "s3cret-päss".as_bytes());
    assert_eq!(found[0].attributes.get("account").map(String::as_str), Some("selftest"));
    assert!(!found[0].locked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keyring_means_no_secret_service() {
    let env = TestEnv::with_options("selftest-nokeyring", no_daemon(false, false)).await.unwrap();
    let conn = env.phone.connection();
    assert!(!harness::bus::name_has_owner(conn, harness::keyring::SECRETS_NAME).await.unwrap());
    let err = harness::keyring::search_secrets(conn, &[("application", "imsync")]).await.unwrap_err();
    assert!(err.to_string().contains("ServiceUnknown") || err.to_string().contains("not provided"), "{err}");
}
