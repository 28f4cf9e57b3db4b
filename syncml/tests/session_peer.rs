//! ClientSession against a tiny in-test SyncML *server* (a test double of the
//! peer, built from our own `types`): message splitting, auth retry, server
//! items split over messages and chunked (MoreData), NoResp.

use syncml::codec::xml;
use syncml::devinf::DevInf;
use syncml::session::*;
use syncml::types::*;

const URL: &str = "http://server.invalid/sync";
const RESP: &str = "http://server.invalid/sync?sessionid=42";

struct Peer {
    max_msg_size: u64,
    msg_id: u32,
    /// Hdr status codes to answer the first messages with (then 200).
    auth_script: Vec<(u16, Option<&'static str>)>,
    /// Server changes to send in package 4: each inner Vec is one message.
    server_sync_msgs: Vec<Vec<Command>>,
    sent_server_sync: bool,
    received: Vec<Message>,
    sizes: Vec<usize>,
    /// Encoding of each client message.
    encodings: Vec<Encoding>,
    /// Answer 420 (device full) from the n-th item on.
    full_after: Option<usize>,
    items_seen: usize,
    /// How item commands are answered.
    item_statuses: ItemStatuses,
    /// LUIDs answered 500.
    reject: Vec<String>,
}

/// How the peer answers an Add/Replace/Delete (of one or several items).
#[derive(Clone, Copy, Debug, PartialEq)]
enum ItemStatuses {
    /// One Status per item, SourceRef = its LUID (what SyncEvolution does).
    PerItem,
    /// One Status per status code, naming its items by SourceRef.
    Joint,
    /// One Status per status code without any SourceRef/TargetRef (only
    /// meaningful when all items of a command get the same code).
    NoRefs,
}

fn status(msg_ref: &str, cmd_ref: &str, cmd: &str, code: u16, source: Option<&str>) -> Command {
    Command::Status(Status {
        msg_ref: msg_ref.into(),
        cmd_ref: cmd_ref.into(),
        cmd: cmd.into(),
        source_refs: source.into_iter().map(String::from).collect(),
        data: code,
        ..Status::default()
    })
}

impl Peer {
    fn new(max_msg_size: u64) -> Self {
        Peer {
            max_msg_size,
            msg_id: 0,
            auth_script: vec![],
            server_sync_msgs: vec![],
            sent_server_sync: false,
            received: vec![],
            sizes: vec![],
            encodings: vec![],
            full_after: None,
            items_seen: 0,
            item_statuses: ItemStatuses::PerItem,
            reject: vec![],
        }
    }

    fn answer(&mut self, body: &[u8]) -> Vec<u8> {
        assert!(body.len() as u64 <= self.max_msg_size, "client message of {} bytes > {}", body.len(), self.max_msg_size);
        self.sizes.push(body.len());
        let enc = Encoding::sniff(body);
        self.encodings.push(enc);
        let m = enc.decode(body).expect("client sends valid SyncML");
        self.msg_id += 1;
        let mut out = Message {
            hdr: SyncHdr {
                ver_dtd: "1.2".into(),
                ver_proto: "SyncML/1.2".into(),
                session_id: m.hdr.session_id.clone(),
                msg_id: self.msg_id.to_string(),
                target: m.hdr.source.clone(),
                source: Location::new(URL),
                resp_uri: Some(RESP.into()),
                meta: Some(Meta { max_msg_size: Some(self.max_msg_size), ..Meta::default() }),
                ..SyncHdr::default()
            },
            body: vec![],
            final_: false,
        };
        let mr = m.hdr.msg_id.clone();
        let (code, chal) = if self.auth_script.is_empty() { (200, None) } else { self.auth_script.remove(0) };
        out.body.push(Command::Status(Status {
            msg_ref: mr.clone(),
            cmd_ref: "0".into(),
            cmd: "SyncHdr".into(),
            chal: chal.map(|t| Chal {
                meta: Meta { type_: Some(t.into()), format: Some("b64".into()), next_nonce: Some("bm9uY2U=".into()), ..Meta::default() },
            }),
            data: code,
            ..Status::default()
        }));
        if code == 401 {
            out.final_ = true;
            self.received.push(m);
            return enc.encode(&out);
        }
        let mut alerts = vec![];
        for c in &m.body {
            match c {
                Command::Alert(a) => {
                    out.body.push(status(&mr, &a.cmd_id, "Alert", 200, None));
                    if a.data != Some(222) {
                        let it = &a.items[0];
                        alerts.push(Command::Alert(Alert {
                            cmd_id: String::new(),
                            data: a.data,
                            items: vec![Item {
                                target: it.source.clone(),
                                source: it.target.clone(),
                                meta: Some(Meta { anchor: Some(Anchor { last: None, next: Some("srv-1".into()) }), ..Meta::default() }),
                                ..Item::default()
                            }],
                            ..Alert::default()
                        }));
                    }
                }
                Command::Put(p) => out.body.push(status(&mr, &p.cmd_id, "Put", 200, None)),
                Command::Get(g) => out.body.push(status(&mr, &g.cmd_id, "Get", 200, None)),
                Command::Map(mp) => out.body.push(status(&mr, &mp.cmd_id, "Map", 200, None)),
                Command::Sync(s) => {
                    out.body.push(status(&mr, &s.cmd_id, "Sync", 200, None));
                    for ic in &s.commands {
                        let (Command::Add(x) | Command::Replace(x) | Command::Delete(x)) = ic else { panic!() };
                        // (code, SourceRefs) of the statuses for this command
                        let mut answers: Vec<(u16, Vec<String>)> = vec![];
                        for it in &x.items {
                            let src = it.source.as_ref().unwrap().loc_uri.clone();
                            self.items_seen += 1;
                            let code = if self.full_after.is_some_and(|n| self.items_seen > n) {
                                420
                            } else if self.reject.contains(&src) {
                                500
                            } else if it.more_data {
                                213
                            } else if matches!(ic, Command::Add(_)) {
                                201
                            } else {
                                200
                            };
                            let joint = self.item_statuses != ItemStatuses::PerItem;
                            match answers.iter_mut().find(|(c, _)| joint && *c == code) {
                                Some((_, refs)) => refs.push(src),
                                None => answers.push((code, vec![src])),
                            }
                        }
                        for (code, mut refs) in answers {
                            if self.item_statuses == ItemStatuses::NoRefs {
                                refs.clear();
                            }
                            out.body.push(Command::Status(Status {
                                msg_ref: mr.clone(),
                                cmd_ref: x.cmd_id.clone(),
                                cmd: ic.name().into(),
                                source_refs: refs,
                                data: code,
                                ..Status::default()
                            }));
                        }
                    }
                }
                Command::Status(_) | Command::Results(_) => {}
                other => panic!("unexpected client command {other:?}"),
            }
        }
        out.body.extend(alerts);
        let is_init = m.body.iter().any(|c| matches!(c, Command::Alert(a) if a.data != Some(222)));
        if is_init {
            out.final_ = true;
        } else if m.final_ && !self.sent_server_sync {
            // Package 4: maybe split over several messages.
            if self.server_sync_msgs.is_empty() {
                self.sent_server_sync = true;
                out.final_ = true;
            } else {
                let cmds = self.server_sync_msgs.remove(0);
                out.body.extend(cmds);
                if self.server_sync_msgs.is_empty() {
                    self.sent_server_sync = true;
                    out.final_ = true;
                }
            }
        } else if !m.final_ && m.body.iter().any(|c| matches!(c, Command::Alert(a) if a.data == Some(222))) {
            let cmds = self.server_sync_msgs.remove(0);
            out.body.extend(cmds);
            if self.server_sync_msgs.is_empty() {
                self.sent_server_sync = true;
                out.final_ = true;
            }
        } else {
            out.final_ = m.final_;
        }
        let mut id = 0;
        for c in &mut out.body {
            id += 1;
            match c {
                Command::Status(s) => s.cmd_id = id.to_string(),
                Command::Alert(a) => a.cmd_id = id.to_string(),
                Command::Sync(s) => {
                    s.cmd_id = id.to_string();
                    for ic in &mut s.commands {
                        id += 1;
                        if let Command::Add(x) | Command::Replace(x) | Command::Delete(x) = ic {
                            x.cmd_id = id.to_string();
                        }
                    }
                }
                _ => {}
            }
        }
        self.received.push(m);
        enc.encode(&out)
    }
}

fn config(stores: &[(&str, SyncMode)], max_msg_size: u32) -> SessionConfig {
    SessionConfig {
        server_url: URL.into(),
        device_id: "dev-1".into(),
        session_id: "7".into(),
        credentials: Some(Credentials { username: "u".into(), password: "p".into(), auth: AuthType::Basic, nonce: None }),
        max_msg_size,
        max_obj_size: 100_000,
        devinf: DevInf { ver_dtd: "1.2".into(), dev_id: "dev-1".into(), dev_typ: "phone".into(), ..DevInf::default() },
        send_devinf: true,
        known_server_devinf: None,
        stores: stores
            .iter()
            .map(|(s, mode)| StoreConfig {
                local_uri: format!("./{s}"),
                remote_uri: s.to_string(),
                mode: *mode,
                last_anchor: None,
                next_anchor: "1".into(),
                content_type: "text/vcard".into(),
                content_version: "3.0".into(),
            })
            .collect(),
    }
}

fn vcard(n: usize) -> Vec<u8> {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person {n} <p{n}@example.org> & Co\r\nN:{n};Person;;;\r\nEND:VCARD\r\n").into_bytes()
}

/// Run a whole session, answering NeedChanges with `on_need` (and a streamed store's
/// NeedMoreChanges with its end), server items with 201.
fn drive(
    s: &mut ClientSession,
    peer: &mut Peer,
    mut on_need: impl FnMut(&mut ClientSession, &str),
) -> Result<SessionReport, SessionError> {
    loop {
        match s.poll() {
            Event::Send { body, .. } => {
                let resp = peer.answer(&body);
                s.receive(200, None, &resp);
            }
            Event::NeedChanges { store, .. } => on_need(s, &store),
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                let r = items.iter().map(|i| ItemResult { handle: i.handle, status: 201, luid: None }).collect();
                s.server_item_results(&store, r);
            }
            Event::Finished(r) => return Ok(r),
            Event::Failed(e) => return Err(e),
        }
    }
}

/// Run a whole session: `changes` per store, server items answered with 201
/// and luid "L<server id>".
fn run(s: &mut ClientSession, peer: &mut Peer, mut changes: Vec<(String, Vec<Change>)>) -> Result<SessionReport, SessionError> {
    let mut urls = vec![];
    loop {
        match s.poll() {
            Event::Send { url, body, .. } => {
                urls.push(url);
                let resp = peer.answer(&body);
                s.receive(200, Some(Encoding::sniff(&resp).content_type()), &resp);
            }
            Event::NeedChanges { store, .. } => {
                let i = changes.iter().position(|(st, _)| *st == store);
                let ch = i.map(|i| changes.remove(i).1).unwrap_or_default();
                s.provide_changes(&store, ch);
            }
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                let r = items
                    .iter()
                    .map(|i| ItemResult { handle: i.handle, status: 201, luid: Some(format!("L{}", i.server_id)) })
                    .collect();
                s.server_item_results(&store, r);
            }
            Event::Finished(r) => {
                // First POST to the URL (unless the caller did it), then the RespURI.
                let start = usize::from(urls[0] == URL);
                assert!(urls[start..].iter().all(|u| u == RESP), "{urls:?}");
                return Ok(r);
            }
            Event::Failed(e) => return Err(e),
        }
    }
}

#[test]
fn thousand_changes_are_split_under_the_servers_max_msg_size() {
    let limit = 8000;
    let mut peer = Peer::new(limit);
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow), ("notes", SyncMode::Slow)], 150_000), Encoding::Xml);
    let mut changes: Vec<Change> = (0..1000).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    // One item too large for any message: sent as a large object in chunks.
    changes.insert(500, Change::Replace { luid: "huge".into(), data: vec![b'x'; 20_000] });
    let notes = vec![Change::Add { luid: "n1".into(), data: b"a note".to_vec() }];
    let r = run(&mut s, &mut peer, vec![("./contacts".into(), changes), ("./notes".into(), notes)]).unwrap();

    // Package 3 = messages 2..k; then one message with statuses for the
    // server's Syncs.
    let pkg3: Vec<&Message> = peer.received.iter().filter(|m| m.body.iter().any(|c| matches!(c, Command::Sync(_)))).collect();
    assert!(pkg3.len() > 10, "only {} messages", pkg3.len());
    assert!(peer.sizes.iter().skip(1).all(|&n| n as u64 <= limit));
    for (i, m) in pkg3.iter().enumerate() {
        assert_eq!(m.final_, i == pkg3.len() - 1, "Final only on the last message of the package");
    }
    let mut seen = std::collections::BTreeMap::new();
    let mut order = vec![];
    let mut chunks = vec![];
    let mut contacts_commands = 0;
    for m in &pkg3 {
        for (ci, c) in m.body.iter().enumerate() {
            if let Command::Sync(sy) = c {
                let store = sy.source.as_ref().unwrap().loc_uri.clone();
                let n = if store == "./contacts" { 1001 } else { 1 };
                assert_eq!(sy.number_of_changes, Some(n));
                for (ii, ic) in sy.commands.iter().enumerate() {
                    let (Command::Add(a) | Command::Replace(a)) = ic else { panic!("{ic:?}") };
                    assert_eq!(a.meta.as_ref().unwrap().type_.as_deref(), Some("text/vcard"));
                    assert!(a.items.iter().all(|i| i.meta.is_none()), "Meta/Type once, at command level");
                    if ii > 0 {
                        // consecutive changes of one kind share a command
                        assert_ne!(ic.name(), sy.commands[ii - 1].name(), "two {} commands in a row", ic.name());
                    }
                    contacts_commands += usize::from(store == "./contacts");
                    for it in &a.items {
                        let luid = it.source.as_ref().unwrap().loc_uri.clone();
                        if luid == "huge" {
                            assert_eq!(a.items.len(), 1, "a chunk travels alone in its command");
                            let last_in_msg = ci == m.body.len() - 1 && ii == sy.commands.len() - 1;
                            let data = it.data.as_ref().unwrap().as_bytes().unwrap().to_vec();
                            chunks.push((a.meta.as_ref().unwrap().size, it.more_data, data, last_in_msg));
                            continue;
                        }
                        if store == "./contacts" {
                            order.push(luid.clone());
                        }
                        *seen.entry(luid).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 1001);
    assert!(seen.values().all(|&n| n == 1), "every item exactly once");
    assert_eq!(order, (0..1000).map(|n| format!("c{n}")).collect::<Vec<_>>(), "in the order given");
    // per message: Adds, maybe the huge Replace (a chunk) and Adds after it
    let n = pkg3.len();
    assert!(contacts_commands <= 3 * n, "{contacts_commands} commands for 1001 changes in {n} messages");
    // The large object: Size on the first chunk only, MoreData on all but the
    // last, nothing after a chunk in its message, reassembles exactly.
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    for (i, (size, more, _, last_in_msg)) in chunks.iter().enumerate() {
        assert_eq!(*size, (i == 0).then_some(20_000));
        assert_eq!(*more, i < chunks.len() - 1);
        if *more {
            assert!(*last_in_msg, "chunk {i} is followed by other commands");
        }
    }
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.2.clone()).collect();
    assert_eq!(whole, vec![b'x'; 20_000]);
    // CmdIDs unique per message.
    for m in &peer.received {
        let mut ids: Vec<&str> = vec![];
        for c in &m.body {
            ids.push(c.cmd_id());
            if let Command::Sync(sy) = c {
                ids.extend(sy.commands.iter().map(|c| c.cmd_id()));
            }
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let c = r.store("./contacts").unwrap();
    assert!(c.ok());
    assert_eq!(c.item_results.len(), 1001);
    let huge = c.item_results.iter().find(|i| i.luid == "huge").unwrap();
    assert_eq!(huge.status, 200);
    assert_eq!(c.large_objects_sent, 1);
    assert_eq!(s.progress("./contacts"), (1001, 1001));
    assert_eq!(c.item_results.iter().filter(|i| i.status == 201).count(), 1000);
    assert_eq!(r.store("./notes").unwrap().item_results[0].status, 201);
}

#[test]
fn auth_retry_once_with_the_challenged_type_and_nonce() {
    let mut peer = Peer::new(100_000);
    peer.auth_script = vec![(401, Some(AUTH_MD5)), (212, None)];
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::TwoWay)], 150_000), Encoding::Xml);
    let r = run(&mut s, &mut peer, vec![]).unwrap();
    let first = &peer.received[0];
    let retry = &peer.received[1];
    assert_eq!(first.hdr.cred.as_ref().unwrap().meta.type_.as_deref(), Some(AUTH_BASIC));
    assert_eq!(first.hdr.msg_id, "1");
    let cred = retry.hdr.cred.as_ref().unwrap();
    assert_eq!(cred.meta.type_.as_deref(), Some(AUTH_MD5));
    assert_eq!(cred.data, syncml::auth::md5("u", "p", b"nonce"));
    assert_eq!(retry.hdr.msg_id, "2");
    assert_eq!(retry.hdr.session_id, first.hdr.session_id);
    assert!(retry.body.iter().any(|c| matches!(c, Command::Put(_))), "package 1 resent");
    assert!(peer.received[2].hdr.cred.is_none());
    assert!(r.stores[0].ok());
    assert_eq!(r.next_nonce.as_deref(), Some(&b"nonce"[..]));
}

#[test]
fn second_401_fails_authentication() {
    let mut peer = Peer::new(100_000);
    peer.auth_script = vec![(401, Some(AUTH_MD5)), (401, Some(AUTH_MD5))];
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::TwoWay)], 150_000), Encoding::Xml);
    let e = run(&mut s, &mut peer, vec![]).unwrap_err();
    assert_eq!(e, SessionError::AuthenticationFailed { status: 401 });
    assert_eq!(peer.received.len(), 2);
}

#[test]
fn server_items_split_over_messages_and_chunked() {
    let mut peer = Peer::new(100_000);
    let big: Vec<u8> = (0..3000).map(|i| b"abcdefghij"[i % 10]).collect();
    let add = |id: &str, data: &[u8], more: bool, size: Option<u64>| {
        Command::Add(ItemCmd {
            meta: Some(Meta { type_: Some("text/vcard".into()), size, ..Meta::default() }),
            items: vec![Item {
                source: Some(Location::new(id)),
                data: Some(ItemData::Bytes(data.to_vec())),
                more_data: more,
                ..Item::default()
            }],
            ..ItemCmd::default()
        })
    };
    let sync = |cmds: Vec<Command>| {
        Command::Sync(Sync {
            target: Some(Location::new("./contacts")),
            source: Some(Location::new("contacts")),
            number_of_changes: Some(3),
            commands: cmds,
            ..Sync::default()
        })
    };
    let mut del = ItemCmd {
        no_resp: true,
        items: vec![Item { target: Some(Location::new("old-luid")), source: Some(Location::new("9")), ..Item::default() }],
        ..ItemCmd::default()
    };
    del.meta = None;
    peer.server_sync_msgs = vec![
        vec![sync(vec![add("0", b"BEGIN:VCARD\r\nEND:VCARD\r\n", false, None), add("1", &big[..1000], true, Some(3000))])],
        vec![sync(vec![add("1", &big[1000..2000], true, None)])],
        vec![sync(vec![add("1", &big[2000..], false, None), Command::Delete(del)])],
    ];
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::TwoWay)], 150_000), Encoding::Xml);
    let mut items_seen = vec![];
    let mut sends = 0;
    let report = loop {
        match s.poll() {
            Event::Send { body, .. } => {
                sends += 1;
                let resp = peer.answer(&body);
                s.receive(200, None, &resp);
            }
            Event::NeedChanges { store, .. } => s.provide_changes(&store, vec![]),
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                let r = items
                    .iter()
                    .map(|i| ItemResult {
                        handle: i.handle,
                        status: if i.kind == ItemKind::Add { 201 } else { 200 },
                        luid: (i.kind == ItemKind::Add).then(|| format!("L{}", i.server_id)),
                    })
                    .collect();
                items_seen.extend(items);
                s.server_item_results(&store, r);
            }
            Event::Finished(r) => break r,
            Event::Failed(e) => panic!("{e}"),
        }
    };
    assert_eq!(items_seen.len(), 3);
    assert_eq!(items_seen[1].server_id, "1");
    assert_eq!(items_seen[1].data, big, "chunks reassembled");
    assert_eq!(items_seen[2].kind, ItemKind::Delete);
    assert_eq!(items_seen[2].local_id.as_deref(), Some("old-luid"));
    assert_eq!(report.stores[0].server_items_received, 3);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Messages: init, sync, 222 (after part 1), 222 (after part 2), statuses+map.
    assert_eq!(sends, 5);
    let r = &peer.received;
    let alert222 = |m: &Message| m.body.iter().any(|c| matches!(c, Command::Alert(a) if a.data == Some(222)));
    assert!(alert222(&r[2]) && alert222(&r[3]) && !r[2].final_ && !r[3].final_);
    // 213 for the first two chunks, 201 for the completed item.
    let st = |m: &Message| -> Vec<(String, u16)> {
        m.body
            .iter()
            .filter_map(|c| match c {
                Command::Status(s) if s.cmd == "Add" => Some((s.source_refs.join(","), s.data)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(st(&r[2]), [("0".to_string(), 201), ("1".into(), 213)]);
    assert_eq!(st(&r[3]), [("1".to_string(), 213)]);
    assert_eq!(st(&r[4]), [("1".to_string(), 201)]);
    // No status for the NoResp Delete.
    assert!(!r[4].body.iter().any(|c| matches!(c, Command::Status(s) if s.cmd == "Delete")));
    let map = r[4].body.iter().find_map(|c| if let Command::Map(m) = c { Some(m) } else { None }).unwrap();
    let pairs: Vec<_> = map.items.iter().map(|mi| (mi.target.loc_uri.as_str(), mi.source.loc_uri.as_str())).collect();
    assert_eq!(pairs, [("0", "L0"), ("1", "L1")]);
    assert!(r[4].final_);
}

#[test]
fn we_never_send_refresh_from_client_unless_configured() {
    for mode in [SyncMode::TwoWay, SyncMode::Slow, SyncMode::OneWayFromClient] {
        let mut s = ClientSession::with_encoding(config(&[("contacts", mode)], 150_000), Encoding::Xml);
        let Event::Send { body, .. } = s.poll() else { panic!() };
        let m = xml::decode(&body).unwrap();
        let codes: Vec<_> = m.body.iter().filter_map(|c| if let Command::Alert(a) = c { a.data } else { None }).collect();
        // Two-way without a Last anchor (first contact) is a slow sync.
        let want = if mode == SyncMode::TwoWay { 201 } else { mode.code() };
        assert_eq!(codes, [want]);
        let mut cfg = config(&[("contacts", mode)], 150_000);
        cfg.stores[0].last_anchor = Some("123".into());
        let mut s = ClientSession::with_encoding(cfg, Encoding::Xml);
        let Event::Send { body, .. } = s.poll() else { panic!() };
        let m = xml::decode(&body).unwrap();
        let codes: Vec<_> = m.body.iter().filter_map(|c| if let Command::Alert(a) = c { a.data } else { None }).collect();
        assert_eq!(codes, [mode.code()]);
    }
}

// ---------------------------------------------------------------- encodings, versions, statuses

fn alert_codes(m: &Message) -> Vec<u16> {
    m.body.iter().filter_map(|c| if let Command::Alert(a) = c { a.data } else { None }).collect()
}

#[test]
fn wbxml_is_the_default_and_used_throughout() {
    let mut peer = Peer::new(150_000);
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
    let changes = vec![Change::Add { luid: "a".into(), data: vec![0xff, 0x00, 0xfe, b'\n'] }];
    let r = run(&mut s, &mut peer, vec![("./contacts".into(), changes)]).unwrap();
    assert!(peer.encodings.iter().all(|e| *e == Encoding::Wbxml), "{:?}", peer.encodings);
    assert_eq!(r.encoding, Encoding::Wbxml);
    assert!(!r.encoding_fallback);
    assert_eq!(r.protocol_version, "1.2");
    // Binary-safe item data.
    let Command::Sync(sy) = peer.received[1].body.iter().find(|c| matches!(c, Command::Sync(_))).unwrap() else { panic!() };
    let Command::Add(a) = &sy.commands[0] else { panic!() };
    assert_eq!(a.items[0].data.as_ref().unwrap().as_bytes().unwrap(), &[0xff, 0x00, 0xfe, b'\n']);
    // DevInf typed for WBXML.
    let Command::Put(p) = &peer.received[0].body[0] else { panic!() };
    assert_eq!(p.meta.as_ref().unwrap().type_.as_deref(), Some("application/vnd.syncml-devinf+wbxml"));
    assert_eq!(r.store("./contacts").unwrap().item_results[0].status, 201);
}

/// The first WBXML message is refused (HTTP 415, or an HTML page): the session
/// starts over in XML, to the original URL with MsgID 1.
#[test]
fn wbxml_refused_falls_back_to_xml() {
    for refusal in [(415u16, "text/plain", &b"Unsupported Media Type"[..]), (200, "text/html", b"<html>no</html>"), (400, "text/plain", b"bad")] {
        let mut peer = Peer::new(150_000);
        let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
        let Event::Send { url, content_type, .. } = s.poll() else { panic!() };
        assert_eq!((url.as_str(), content_type), (URL, "application/vnd.syncml+wbxml"));
        s.receive(refusal.0, Some(refusal.1), refusal.2);
        let Event::Send { url, body, content_type } = s.poll() else { panic!("{refusal:?}") };
        assert_eq!((url.as_str(), content_type), (URL, "application/vnd.syncml+xml"));
        let m = xml::decode(&body).unwrap();
        assert_eq!(m.hdr.msg_id, "1");
        assert!(m.hdr.cred.is_some());
        let resp = peer.answer(&body);
        s.receive(200, Some("application/vnd.syncml+xml"), &resp);
        let r = run(&mut s, &mut peer, vec![]).unwrap();
        assert!(r.encoding_fallback);
        assert_eq!(r.encoding, Encoding::Xml);
        assert!(peer.encodings.iter().all(|e| *e == Encoding::Xml));
        assert!(r.warnings.iter().any(|w| w.contains("refused WBXML")), "{:?}", r.warnings);
        assert!(r.store("./contacts").unwrap().ok());
    }
    // Only the first answer can trigger it: later errors fail the session.
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), Encoding::Xml);
    let _ = s.poll();
    s.receive(415, Some("text/plain"), b"no");
    assert!(matches!(s.poll(), Event::Failed(SessionError::Http { status: 415, .. })));
}

/// A SyncML 1.1 server answers our 1.2 SyncHdr with 505: redo in 1.1.
#[test]
fn syncml_11_server_gets_a_11_session() {
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), Encoding::Xml);
    let Event::Send { body, .. } = s.poll() else { panic!() };
    let m = xml::decode(&body).unwrap();
    let answer = Message {
        hdr: SyncHdr { ver_dtd: "1.1".into(), ver_proto: "SyncML/1.1".into(), session_id: "7".into(), msg_id: "1".into(), ..SyncHdr::default() },
        body: vec![status(&m.hdr.msg_id, "0", "SyncHdr", 505, None)],
        final_: true,
    };
    s.receive(200, Some("application/vnd.syncml+xml"), &xml::encode(&answer));
    let Event::Send { url, body, .. } = s.poll() else { panic!() };
    assert_eq!(url, URL);
    let m = xml::decode(&body).unwrap();
    assert_eq!((m.hdr.ver_dtd.as_str(), m.hdr.ver_proto.as_str(), m.hdr.msg_id.as_str()), ("1.1", "SyncML/1.1", "1"));
    assert!(String::from_utf8_lossy(&body).contains("SYNCML:SYNCML1.1"));
    let Command::Put(p) = &m.body[0] else { panic!() };
    assert_eq!(p.items[0].source.as_ref().unwrap().loc_uri, "./devinf11");
    let Some(ItemData::DevInf(d)) = &p.items[0].data else { panic!() };
    assert_eq!(d.ver_dtd, "1.1");
    let mut peer = Peer::new(150_000);
    let resp = peer.answer(&body);
    s.receive(200, None, &resp);
    let changes = (0..5).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    let r = run(&mut s, &mut peer, vec![("./contacts".into(), changes)]).unwrap();
    assert_eq!(r.protocol_version, "1.1");
    // Several items in one Add are SyncML 1.1 too.
    let m3 = peer.received.iter().find(|m| m.body.iter().any(|c| matches!(c, Command::Sync(_)))).unwrap();
    assert_eq!(m3.hdr.ver_dtd, "1.1");
    let Some(Command::Sync(sy)) = m3.body.iter().find(|c| matches!(c, Command::Sync(_))) else { panic!() };
    let [Command::Add(a)] = &sy.commands[..] else { panic!("{:?}", sy.commands) };
    assert_eq!(a.items.len(), 5);
    let c = r.store("./contacts").unwrap();
    assert!(c.ok() && c.item_results.iter().all(|i| i.status == 201), "{c:?}");
}

/// 420 (device full): nothing more is sent to that store; the report says so.
#[test]
fn device_full_stops_sending_to_the_store() {
    let mut peer = Peer::new(6000);
    peer.full_after = Some(30);
    let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), Encoding::Xml);
    let changes: Vec<Change> = (0..200).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    let r = run(&mut s, &mut peer, vec![("./contacts".into(), changes)]).unwrap();
    let c = r.store("./contacts").unwrap();
    assert!(c.server_full);
    assert!(c.error.as_deref().unwrap().contains("420"));
    assert_eq!(c.item_results.iter().filter(|i| i.status == 201).count(), 30);
    let refused = c.item_results.iter().filter(|i| i.status == 420).count();
    assert!(refused >= 1);
    let unsent = c.item_results.iter().filter(|i| i.status == 0).count();
    assert_eq!(30 + refused + unsent, 200);
    assert!(unsent > 0 && c.item_results.iter().filter(|i| i.status == 0).all(|i| i.error.as_deref().unwrap().contains("full")));
    assert_eq!(peer.items_seen, 30 + refused, "nothing sent after the 420");
}

/// The server's DevInf is there at NeedChanges; the chosen format goes into
/// Meta/Type; progress counts acknowledged changes.
#[test]
fn negotiated_format_and_progress() {
    let mut peer = Peer::new(150_000);
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
    let mut saw_need = false;
    loop {
        match s.poll() {
            Event::Send { body, .. } => {
                let resp = peer.answer(&body);
                s.receive(200, None, &resp);
            }
            Event::NeedChanges { store, .. } => {
                saw_need = true;
                assert_eq!(s.progress(&store), (0, 0));
                s.provide_changes_as(&store, "text/x-vcard", "2.1", vec![Change::Add { luid: "1".into(), data: b"BEGIN:VCARD".to_vec() }]);
                assert_eq!(s.progress(&store), (0, 1));
            }
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                let r = items.iter().map(|i| ItemResult { handle: i.handle, status: 201, luid: None }).collect();
                s.server_item_results(&store, r);
            }
            Event::Finished(r) => {
                let c = r.store("./contacts").unwrap();
                assert_eq!((c.content_type.as_str(), c.content_version.as_str()), ("text/x-vcard", "2.1"));
                assert_eq!(s.progress("./contacts"), (1, 1));
                break;
            }
            Event::Failed(e) => panic!("{e}"),
        }
    }
    assert!(saw_need);
    let Command::Sync(sy) = peer.received[1].body.iter().find(|c| matches!(c, Command::Sync(_))).unwrap() else { panic!() };
    let Command::Add(a) = &sy.commands[0] else { panic!() };
    assert_eq!(a.meta.as_ref().unwrap().type_.as_deref(), Some("text/x-vcard"));
    let _ = alert_codes;
}

/// A client that knows the server has its DevInf, and knows the server's, sends neither
/// `Put` nor `Get` in package 1, and negotiates with the DevInf it knows.
#[test]
fn known_devinf_leaves_put_and_get_out_of_package_1() {
    let mut peer = Peer::new(150_000);
    let known = DevInf {
        ver_dtd: "1.2".into(),
        dev_id: "server".into(),
        dev_typ: "server".into(),
        data_stores: vec![syncml::devinf::DataStore {
            source_ref: "contacts".into(),
            rx_pref: Some(syncml::devinf::ContentTypeVersion::new("text/x-vcard", "2.1")),
            ..Default::default()
        }],
        ..DevInf::default()
    };
    let cfg = SessionConfig { send_devinf: false, known_server_devinf: Some(known.clone()), ..config(&[("contacts", SyncMode::Slow)], 150_000) };
    let mut s = ClientSession::new(cfg);
    let mut at_need = None;
    let report = drive(&mut s, &mut peer, |s, store| {
        at_need = s.server_devinf().cloned();
        s.provide_changes(store, vec![Change::Add { luid: "1".into(), data: vcard(1) }]);
    })
    .unwrap();
    let first = &peer.received[0];
    assert!(!first.body.iter().any(|c| matches!(c, Command::Put(_) | Command::Get(_))), "{:?}", first.body);
    assert_eq!(alert_codes(first), vec![201]);
    assert_eq!(at_need.as_ref(), Some(&known));
    assert_eq!(report.server_devinf.as_ref(), Some(&known));
    assert_eq!(report.store("./contacts").unwrap().item_results.len(), 1);

    // The default still sends both.
    let mut peer = Peer::new(150_000);
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
    run(&mut s, &mut peer, vec![]).unwrap();
    let kinds: Vec<bool> = peer.received[0].body.iter().map(|c| matches!(c, Command::Put(_) | Command::Get(_))).collect();
    assert_eq!(kinds.iter().filter(|k| **k).count(), 2);
}

#[test]
fn status_descriptions_by_class() {
    assert_eq!(status_description(420), "device full");
    assert_eq!(status_description(213), "chunked item accepted and buffered");
    assert_eq!(status_description(499), "client error");
    assert_eq!(status_description(599), "server error");
    assert_eq!(status_description(299), "unknown status");
}

// ---------------------------------------------------------------- packing items, filling messages

/// A vCard of 200..700 bytes.
fn sized_vcard(n: usize) -> Vec<u8> {
    let mut v = vcard(n);
    v.splice(v.len() - 11.., format!("NOTE:{}\r\nEND:VCARD\r\n", "n".repeat(150 + (n * 37) % 500)).into_bytes());
    v
}

/// Runs of Adds, Replaces and Deletes (LUIDs "0".."n-1").
fn mixed_changes(n: usize, run: usize) -> Vec<Change> {
    (0..n)
        .map(|i| {
            let luid = i.to_string();
            match (i / run) % 3 {
                0 => Change::Add { luid, data: sized_vcard(i) },
                1 => Change::Replace { luid, data: sized_vcard(i) },
                _ => Change::Delete { luid },
            }
        })
        .collect()
}

/// Every message stays within the server's MaxMsgSize (`Peer::answer` checks
/// it) and every message of package 3 but the last is filled to within a few
/// hundred bytes of it (the headroom plus less than one item).
#[test]
fn messages_are_filled_up_to_the_servers_max_msg_size() {
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        for limit in [20_000u64, 150_000] {
            let mut peer = Peer::new(limit);
            let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), enc);
            let n = 3000;
            let r = run(&mut s, &mut peer, vec![("./contacts".into(), mixed_changes(n, 700))]).unwrap();
            let pkg3: Vec<usize> = (0..peer.received.len())
                .filter(|&i| peer.received[i].body.iter().any(|c| matches!(c, Command::Sync(_))))
                .collect();
            assert!(pkg3.len() >= 3, "{enc:?} {limit}: {} messages", pkg3.len());
            for &i in &pkg3[..pkg3.len() - 1] {
                let size = peer.sizes[i] as u64;
                assert!(size <= limit && size + 1024 >= limit, "{enc:?} {limit}: message {i} of {size} bytes");
            }
            let c = r.store("./contacts").unwrap();
            assert!(c.ok() && r.warnings.is_empty(), "{c:?} {:?}", r.warnings);
            assert!(c.item_results.iter().all(|i| matches!(i.status, 200 | 201) && i.error.is_none()));
            assert_eq!(s.progress("./contacts"), (n as u32, n as u32));
        }
    }
}

/// However the server answers a command of several items (a Status per item,
/// one naming several items, one naming none), each item gets its status.
#[test]
fn statuses_of_multi_item_commands_reach_their_items() {
    for style in [ItemStatuses::PerItem, ItemStatuses::Joint, ItemStatuses::NoRefs] {
        for enc in [Encoding::Wbxml, Encoding::Xml] {
            let mut peer = Peer::new(30_000);
            peer.item_statuses = style;
            if style != ItemStatuses::NoRefs {
                peer.reject = ["3", "4", "25", "61", "62", "99"].map(String::from).to_vec();
            }
            let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), enc);
            let r = run(&mut s, &mut peer, vec![("./contacts".into(), mixed_changes(100, 20))]).unwrap();
            let commands: Vec<(String, usize)> = peer
                .received
                .iter()
                .flat_map(|m| &m.body)
                .filter_map(|c| if let Command::Sync(s) = c { Some(&s.commands) } else { None })
                .flatten()
                .map(|c| {
                    let (Command::Add(x) | Command::Replace(x) | Command::Delete(x)) = c else { panic!() };
                    (c.name().to_string(), x.items.len())
                })
                .collect();
            assert!(commands.len() < 20 && commands.iter().all(|(_, n)| *n > 1), "{style:?} {enc:?}: {commands:?}");
            let c = r.store("./contacts").unwrap();
            assert_eq!(c.item_results.len(), 100);
            for (i, res) in c.item_results.iter().enumerate() {
                let want = if peer.reject.contains(&res.luid) {
                    500
                } else if res.kind == ItemKind::Add {
                    201
                } else {
                    200
                };
                assert_eq!(
                    (res.luid.as_str(), res.kind, res.status),
                    (i.to_string().as_str(), mixed_changes(100, 20)[i].kind(), want),
                    "{style:?} {enc:?}"
                );
            }
            assert!(r.warnings.is_empty(), "{style:?} {enc:?}: {:?}", r.warnings);
            assert_eq!(s.progress("./contacts"), (100, 100));
        }
    }
}

/// Changes handed over a batch at a time: the session asks for more only when less than a
/// message is queued, fills its messages as with all changes given at once, announces the
/// given total as NumberOfChanges, and ends (Final) only after the last batch.
#[test]
fn streamed_changes_are_asked_for_a_message_at_a_time() {
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let limit = 20_000u64;
        let mut peer = Peer::new(limit);
        let mut s = ClientSession::with_encoding(config(&[("contacts", SyncMode::Slow)], 150_000), enc);
        let n = 1500;
        let mut all = mixed_changes(n, 10_000).into_iter();
        let batch = 40; // ~40 × 300 bytes: less than a message
        let (mut asked, mut given, mut max_ahead) = (0, 0usize, 0usize);
        let r = loop {
            match s.poll() {
                Event::Send { body, .. } => {
                    let resp = peer.answer(&body);
                    s.receive(200, None, &resp);
                    // what the server has acknowledged vs what we handed over
                    let (acked, _) = s.progress("./contacts");
                    max_ahead = max_ahead.max(given - acked as usize);
                }
                Event::NeedChanges { store, .. } => {
                    let first: Vec<Change> = all.by_ref().take(batch).collect();
                    given += first.len();
                    s.provide_changes_streamed(&store, "text/vcard", "3.0", first, Some(n as u32));
                    assert_eq!(s.progress(&store), (0, n as u32));
                }
                Event::NeedMoreChanges { store } => {
                    asked += 1;
                    let more: Vec<Change> = all.by_ref().take(batch).collect();
                    given += more.len();
                    let last = given == n;
                    s.more_changes(&store, more, last);
                }
                Event::ServerItems { store, items } => {
                    let r = items.iter().map(|i| ItemResult { handle: i.handle, status: 201, luid: None }).collect();
                    s.server_item_results(&store, r);
                }
                Event::Finished(r) => break r,
                Event::Failed(e) => panic!("{enc:?}: {e}"),
            }
        };
        assert_eq!(given, n);
        assert!(asked >= n / batch - 1, "{enc:?}: asked {asked} times");
        // never much more than two messages' worth handed over and not yet acknowledged
        assert!(max_ahead <= 2 * (limit as usize / 300) + batch, "{enc:?}: {max_ahead} changes ahead");
        let c = r.store("./contacts").unwrap();
        assert!(c.ok() && r.warnings.is_empty(), "{c:?} {:?}", r.warnings);
        assert_eq!(c.item_results.len(), n);
        assert!(c.item_results.iter().all(|i| matches!(i.status, 200 | 201) && i.error.is_none()));
        // messages filled as without streaming; NumberOfChanges is the given total
        let pkg3: Vec<usize> = (0..peer.received.len())
            .filter(|&i| peer.received[i].body.iter().any(|c| matches!(c, Command::Sync(_))))
            .collect();
        for &i in &pkg3[..pkg3.len() - 1] {
            let size = peer.sizes[i] as u64;
            assert!(size <= limit && size + 1024 >= limit, "{enc:?}: message {i} of {size} bytes");
            assert!(!peer.received[i].final_, "{enc:?}: Final before the last batch");
        }
        let Command::Sync(first_sync) = peer.received[pkg3[0]].body.iter().find(|c| matches!(c, Command::Sync(_))).unwrap() else { panic!() };
        assert_eq!(first_sync.number_of_changes, Some(n as u32));
    }
}

/// A stream may end with an empty last batch; a NeedMoreChanges left unanswered fails the
/// session as a usage error.
#[test]
fn streamed_changes_end_empty_and_must_be_answered() {
    let mut peer = Peer::new(150_000);
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
    let r = drive(&mut s, &mut peer, |s, store| {
        s.provide_changes_streamed(store, "text/vcard", "3.0", vec![Change::Add { luid: "1".into(), data: vcard(1) }], None)
    })
    .unwrap();
    assert_eq!(r.store("./contacts").unwrap().item_results.len(), 1);
    let Command::Sync(sy) = peer.received[1].body.iter().find(|c| matches!(c, Command::Sync(_))).unwrap() else { panic!() };
    assert_eq!(sy.number_of_changes, None);

    let mut peer = Peer::new(150_000);
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow)], 150_000));
    let failed = loop {
        match s.poll() {
            Event::Send { body, .. } => {
                let resp = peer.answer(&body);
                s.receive(200, None, &resp);
            }
            Event::NeedChanges { store, .. } => s.provide_changes_streamed(&store, "text/vcard", "3.0", vec![], None),
            Event::NeedMoreChanges { .. } => {} // not answered
            Event::Finished(_) => panic!("finished without the changes"),
            Event::Failed(e) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(failed, SessionError::Usage(ref m) if m.contains("NeedMoreChanges")), "{failed:?}");
}
