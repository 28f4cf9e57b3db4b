//! The SyncML client (`syncml::ClientSession` over `imsync::transport::HttpTransport`) against
//! the real SyncEvolution SyncML server, with an in-memory item store in the test.

use std::collections::BTreeMap;
use std::time::Instant;

use harness::proxy::Proxy;
use harness::SyncmlServer;
use imsync::transport::{HttpTransport, Limits};
use syncml::devinf::{ContentTypeVersion, DataStore, DevInf};
use syncml::session::*;

type Mem = BTreeMap<String, Vec<u8>>;

fn server(dir: &tempfile::TempDir) -> SyncmlServer {
    let root = dir.path().to_path_buf();
    SyncmlServer::start(&root, &root.join("server")).expect("SyncML server")
}

fn devinf(dev: &str) -> DevInf {
    DevInf {
        ver_dtd: "1.2".into(),
        man: Some("imsync".into()),
        mod_: Some("test".into()),
        dev_id: dev.into(),
        dev_typ: "phone".into(),
        utc: true,
        support_large_objs: true,
        support_number_of_changes: true,
        data_stores: vec![DataStore {
            source_ref: "./contacts".into(),
            rx_pref: Some(ContentTypeVersion::new("text/vcard", "3.0")),
            tx_pref: Some(ContentTypeVersion::new("text/vcard", "3.0")),
            sync_types: vec![1, 2, 3, 4, 5, 6, 7],
            ..DataStore::default()
        }],
        ..DevInf::default()
    }
}

struct Client {
    url: String,
    dev: String,
    creds: Credentials,
    session: u32,
    last_anchor: Option<String>,
    max_msg_size: u32,
}

impl Client {
    fn new(srv: &SyncmlServer, url: &str, dev: &str) -> Client {
        Client {
            url: url.into(),
            dev: dev.into(),
            creds: Credentials { username: srv.username().into(), password: srv.password().into(), auth: AuthType::Md5, nonce: None },
            session: 0,
            last_anchor: None,
            max_msg_size: 150_000,
        }
    }

    fn config(&mut self, mode: SyncMode) -> SessionConfig {
        self.session += 1;
        SessionConfig {
            server_url: self.url.clone(),
            device_id: self.dev.clone(),
            session_id: self.session.to_string(),
            credentials: Some(self.creds.clone()),
            max_msg_size: self.max_msg_size,
            max_obj_size: 4_000_000,
            devinf: devinf(&self.dev),
            send_devinf: true,
            known_server_devinf: None,
            stores: vec![StoreConfig {
                local_uri: "./contacts".into(),
                remote_uri: "contacts".into(),
                mode,
                last_anchor: self.last_anchor.clone(),
                next_anchor: format!("a{}", self.session),
                content_type: "text/vcard".into(),
                content_version: "3.0".into(),
            }],
        }
    }

    /// One session; `changes` are given at NeedChanges; server items go into `mem`.
    fn sync(&mut self, mode: SyncMode, encoding: Encoding, changes: Vec<Change>, mem: &mut Mem) -> (SessionReport, Vec<(u16, String)>) {
        let cfg = self.config(mode);
        let t = HttpTransport::new(Limits::default());
        let mut s = ClientSession::with_encoding(cfg, encoding);
        let mut changes = Some(changes);
        let mut sent = Vec::new();
        let mut next_luid = mem.len();
        let mut by_server: BTreeMap<String, String> = BTreeMap::new();
        loop {
            match s.poll() {
                Event::Send { url, body, content_type } => {
                    let r = t.post(&url, content_type, &body).expect("POST");
                    sent.push((r.status, content_type.to_string()));
                    s.receive(r.status, r.content_type.as_deref(), &r.body);
                }
                Event::NeedChanges { store, mode } => {
                    assert!(s.server_devinf().is_some(), "server DevInf known at NeedChanges");
                    let ch = changes.take().unwrap_or_default();
                    let ch = if mode.client_sends() { ch } else { vec![] };
                    s.provide_changes_as(&store, "text/vcard", "3.0", ch);
                }
                Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
                Event::ServerItems { store, items } => {
                    let mut res = vec![];
                    for it in items {
                        let luid = it.local_id.clone().or_else(|| by_server.get(&it.server_id).cloned());
                        let (status, new) = match it.kind {
                            ItemKind::Add => {
                                next_luid += 1;
                                let l = format!("m{next_luid}");
                                mem.insert(l.clone(), it.data.clone());
                                by_server.insert(it.server_id.clone(), l.clone());
                                (201, Some(l))
                            }
                            ItemKind::Replace => match luid {
                                Some(l) => {
                                    mem.insert(l, it.data.clone());
                                    (200, None)
                                }
                                None => {
                                    next_luid += 1;
                                    let l = format!("m{next_luid}");
                                    mem.insert(l.clone(), it.data.clone());
                                    (201, Some(l))
                                }
                            },
                            ItemKind::Delete => (if luid.and_then(|l| mem.remove(&l)).is_some() { 200 } else { 211 }, None),
                        };
                        res.push(ItemResult { handle: it.handle, status, luid: new });
                    }
                    s.server_item_results(&store, res);
                }
                Event::Finished(r) => {
                    if let Some(n) = &r.next_nonce {
                        self.creds.nonce = Some(n.clone());
                    }
                    if r.stores.iter().all(|s| s.ok()) {
                        self.last_anchor = Some(r.stores[0].next_anchor.clone());
                    }
                    return (r, sent);
                }
                Event::Failed(e) => panic!("session failed: {e}"),
            }
        }
    }
}

fn vcard(n: usize) -> Vec<u8> {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Tester{n};Person;;;\r\nFN:Person Tester{n}\r\nTEL;TYPE=CELL:+49 170 {n:07}\r\nEMAIL:p{n}@example.org\r\nNOTE:contact number {n} with some text to make it a bit longer than minimal\r\nEND:VCARD\r\n").into_bytes()
}

#[test]
fn wbxml_backup_of_1000_contacts_in_many_messages() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    let mut c = Client::new(&srv, srv.url(), "imsync-proto-1000");
    c.max_msg_size = 40_000;
    let changes: Vec<Change> = (0..1000).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    let t0 = Instant::now();
    let (r, sent) = c.sync(SyncMode::RefreshFromClient, Encoding::Wbxml, changes, &mut Mem::new());
    eprintln!("1000 contacts: {} messages, {} bytes sent, {:?}", r.messages_sent, r.bytes_sent, t0.elapsed());
    assert_eq!(r.encoding, Encoding::Wbxml);
    assert!(!r.encoding_fallback);
    assert!(sent.iter().all(|(st, ct)| *st == 200 && ct == "application/vnd.syncml+wbxml"));
    let st = r.store("./contacts").unwrap();
    assert!(st.ok(), "{st:?}");
    let sync_msgs = r.messages_sent - 2;
    assert!(sync_msgs >= 5, "only {} messages", r.messages_sent);
    assert_eq!(st.item_results.iter().filter(|i| i.status == 201).count(), 1000, "{:?}", &st.item_results[..3]);
    assert_eq!(srv.item_count("contacts"), 1000);
}

#[test]
fn large_photo_goes_out_as_a_large_object() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    let mut c = Client::new(&srv, srv.url(), "imsync-proto-lo");
    // 500 KB photo: base64 lines folded as in vCard 3.0.
    let raw: Vec<u8> = (0..375_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut folded = String::new();
    for (i, ch) in enc.chars().enumerate() {
        if i > 0 && i % 74 == 0 {
            folded.push_str("\r\n ");
        }
        folded.push(ch);
    }
    let card = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Photo;Big;;;\r\nFN:Big Photo\r\nPHOTO;ENCODING=b;TYPE=JPEG:{folded}\r\nEND:VCARD\r\n");
    assert!(card.len() > 500_000);
    let (r, _) = c.sync(SyncMode::RefreshFromClient, Encoding::Wbxml, vec![Change::Add { luid: "big".into(), data: card.into_bytes() }], &mut Mem::new());
    let st = r.store("./contacts").unwrap();
    assert!(st.ok(), "{st:?} {:?}", r.warnings);
    assert_eq!(st.large_objects_sent, 1);
    assert_eq!(st.item_results[0].status, 201, "{:?}", st.item_results);
    // Package 1, then >= 4 messages of chunks (500 KB at ~135 KB per message), then the end.
    assert!(r.messages_sent >= 5, "{} messages", r.messages_sent);
    let items = srv.items("contacts");
    assert_eq!(items.len(), 1);
    let stored = String::from_utf8_lossy(&items[0].1).to_string();
    // The server re-encodes vCards: compare the photo bytes.
    let unfolded = stored.replace("\r\n ", "").replace("\n ", "");
    let line = unfolded.lines().find(|l| l.starts_with("PHOTO")).expect("PHOTO stored");
    let data = line.rsplit(':').next().unwrap().trim();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(data).unwrap(), raw, "photo stored intact");
}

#[test]
fn receive_300_server_contacts_then_map_means_no_resend() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    // Phone A fills the server.
    let mut a = Client::new(&srv, srv.url(), "imsync-proto-a");
    let changes: Vec<Change> = (0..300).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    let (r, _) = a.sync(SyncMode::RefreshFromClient, Encoding::Wbxml, changes, &mut Mem::new());
    assert!(r.stores[0].ok());
    // Phone B: first contact (two-way without anchor -> slow), receives all 300.
    let mut b = Client::new(&srv, srv.url(), "imsync-proto-b");
    let mut mem = Mem::new();
    let (r, _) = b.sync(SyncMode::TwoWay, Encoding::Wbxml, vec![], &mut mem);
    let st = r.store("./contacts").unwrap();
    assert_eq!(st.requested, SyncMode::Slow);
    assert!(st.ok(), "{st:?}");
    assert_eq!(st.server_items_received, 300);
    assert_eq!(mem.len(), 300);
    assert!(r.warnings.iter().all(|w| !w.contains("Map")), "{:?}", r.warnings);
    // Next two-way session: the server knows our ids (Map): nothing comes again.
    let (r, _) = b.sync(SyncMode::TwoWay, Encoding::Wbxml, vec![], &mut mem);
    let st = r.store("./contacts").unwrap();
    assert_eq!(st.mode, SyncMode::TwoWay, "{:?}", r.warnings);
    assert_eq!(st.server_items_received, 0);
    // A server-side Replace and Delete arrive by our LUIDs.
    let (r, _) = a.sync(SyncMode::TwoWay, Encoding::Wbxml, vec![Change::Replace { luid: "c1".into(), data: vcard(100_001) }, Change::Delete { luid: "c2".into() }], &mut Mem::new());
    assert!(r.stores[0].ok(), "{:?}", r.stores[0]);
    let (r, _) = b.sync(SyncMode::TwoWay, Encoding::Wbxml, vec![], &mut mem);
    let st = r.store("./contacts").unwrap();
    assert_eq!(st.server_items_received, 2, "{:?}", r.warnings);
    assert_eq!(mem.len(), 299);
    assert!(mem.values().any(|v| String::from_utf8_lossy(v).contains("Tester100001")));
}

#[test]
fn md5_auth_with_nonce_rotation_over_three_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    let mut c = Client::new(&srv, srv.url(), "imsync-proto-md5");
    let mut nonces = vec![];
    for i in 0..3 {
        let (r, _) = c.sync(if i == 0 { SyncMode::RefreshFromClient } else { SyncMode::TwoWay }, Encoding::Wbxml, vec![Change::Add { luid: format!("x{i}"), data: vcard(i) }], &mut Mem::new());
        assert!(r.stores[0].ok(), "{:?}", r.stores[0]);
        let n = r.next_nonce.clone().expect("server sent a NextNonce");
        nonces.push(n);
        // Our md5 credentials for session i+1 use this nonce; the server accepted them (212/200).
        assert!(r.warnings.iter().all(|w| !w.contains("auth")), "{:?}", r.warnings);
    }
    assert_ne!(nonces[0], nonces[1]);
    assert_ne!(nonces[1], nonces[2]);
    // Wrong password: authentication fails clearly (after the one retry).
    c.creds.password = "wrong".into();
    let cfg = c.config(SyncMode::TwoWay);
    let t = HttpTransport::new(Limits::default());
    let mut s = ClientSession::new(cfg);
    let err = loop {
        match s.poll() {
            Event::Send { url, body, content_type } => {
                let r = t.post(&url, content_type, &body).unwrap();
                s.receive(r.status, r.content_type.as_deref(), &r.body);
            }
            Event::Failed(e) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(err, SessionError::AuthenticationFailed { .. }), "{err}");
}

#[test]
fn wrong_last_anchor_recovers_with_a_slow_sync() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    let mut c = Client::new(&srv, srv.url(), "imsync-proto-508");
    let (r, _) = c.sync(SyncMode::RefreshFromClient, Encoding::Wbxml, (0..5).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect(), &mut Mem::new());
    assert!(r.stores[0].ok());
    c.last_anchor = Some("not-the-anchor-the-server-has".into());
    let mut mem = Mem::new();
    let (r, _) = c.sync(SyncMode::TwoWay, Encoding::Wbxml, vec![], &mut mem);
    let st = r.store("./contacts").unwrap();
    assert_eq!(st.requested, SyncMode::TwoWay);
    assert_eq!(st.alert_status, 508, "{st:?}");
    assert_eq!(st.mode, SyncMode::Slow);
    assert!(st.ok(), "{st:?}");
}

#[test]
fn wbxml_refused_falls_back_to_xml() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&dir);
    let proxy = Proxy::start(&format!("127.0.0.1:{}", srv.port()), true).unwrap();
    let path = srv.url().splitn(4, '/').nth(3).unwrap_or("syncevolution").to_string();
    let url = format!("http://127.0.0.1:{}/{path}", proxy.port());
    let mut c = Client::new(&srv, &url, "imsync-proto-xml");
    let (r, sent) = c.sync(SyncMode::RefreshFromClient, Encoding::Wbxml, vec![Change::Add { luid: "a".into(), data: vcard(1) }], &mut Mem::new());
    assert!(r.encoding_fallback);
    assert_eq!(r.encoding, Encoding::Xml);
    assert_eq!(sent[0], (415, "application/vnd.syncml+wbxml".to_string()));
    assert!(sent[1..].iter().all(|(st, ct)| *st == 200 && ct == "application/vnd.syncml+xml"), "{sent:?}");
    assert_eq!(proxy.refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(r.stores[0].ok(), "{:?}", r.stores[0]);
    assert_eq!(srv.item_count("contacts"), 1);
}

/// Consecutive changes of one kind go out as one command of several items
/// (the session's default); SyncEvolution answers each item, and each item
/// gets its own status, a failure in the middle of a run included.
#[test]
fn multi_item_commands_get_a_status_per_item() {
    for encoding in [Encoding::Wbxml, Encoding::Xml] {
        let dir = tempfile::tempdir().unwrap();
        let srv = server(&dir);
        let mut c = Client::new(&srv, srv.url(), "imsync-proto-multi");
        let adds = (0..20).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
        let (r, _) = c.sync(SyncMode::RefreshFromClient, encoding, adds, &mut Mem::new());
        let st = r.store("./contacts").unwrap();
        assert!(st.ok() && st.item_results.iter().all(|i| i.status == 201), "{st:?}");
        // A run of Replaces (one of an item the server does not have: added,
        // 201; one not a vCard: 415), then a run of Deletes.
        let mut changes: Vec<Change> =
            (0..8).map(|n| Change::Replace { luid: format!("c{n}"), data: vcard(1000 + n) }).collect();
        changes.insert(3, Change::Replace { luid: "new-1".into(), data: vcard(2000) });
        changes.insert(6, Change::Replace { luid: "c13".into(), data: b"garbage".to_vec() });
        changes.extend(["c10", "c11", "c12"].map(|l| Change::Delete { luid: l.into() }));
        let (r, _) = c.sync(SyncMode::TwoWay, encoding, changes, &mut Mem::new());
        let st = r.store("./contacts").unwrap();
        let got: Vec<(&str, u16)> = st.item_results.iter().map(|i| (i.luid.as_str(), i.status)).collect();
        let want = [
            ("c0", 200),
            ("c1", 200),
            ("c2", 200),
            ("new-1", 201),
            ("c3", 200),
            ("c4", 200),
            ("c13", 415),
            ("c5", 200),
            ("c6", 200),
            ("c7", 200),
            ("c10", 200),
            ("c11", 200),
            ("c12", 200),
        ];
        assert_eq!(got, want, "{encoding:?}");
        assert!(r.warnings.is_empty(), "{encoding:?}: {:?}", r.warnings);
        assert_eq!(srv.item_count("contacts"), 18);
    }
}
