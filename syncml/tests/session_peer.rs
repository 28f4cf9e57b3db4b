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
        }
    }

    fn answer(&mut self, body: &[u8]) -> Vec<u8> {
        assert!(body.len() as u64 <= self.max_msg_size, "client message of {} bytes > {}", body.len(), self.max_msg_size);
        self.sizes.push(body.len());
        let m = xml::decode(body).expect("client sends valid SyncML");
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
            return xml::encode(&out);
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
                        let src = x.items[0].source.as_ref().map(|l| l.loc_uri.as_str());
                        let code = if matches!(ic, Command::Add(_)) { 201 } else { 200 };
                        out.body.push(status(&mr, &x.cmd_id, ic.name(), code, src));
                    }
                }
                Command::Status(_) | Command::Results(_) => {}
                other => panic!("unexpected client command {other:?}"),
            }
        }
        out.body.extend(alerts);
        let is_init = m.body.iter().any(|c| matches!(c, Command::Put(_)));
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
        xml::encode(&out)
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

/// Run a whole session: `changes` per store, server items answered with 201
/// and luid "L<server id>".
fn run(s: &mut ClientSession, peer: &mut Peer, mut changes: Vec<(String, Vec<Change>)>) -> Result<SessionReport, SessionError> {
    let mut urls = vec![];
    loop {
        match s.poll() {
            Event::Send { url, body, .. } => {
                urls.push(url);
                let resp = peer.answer(&body);
                s.receive(200, Some("application/vnd.syncml+xml"), &resp);
            }
            Event::NeedChanges { store, .. } => {
                let i = changes.iter().position(|(st, _)| *st == store);
                let ch = i.map(|i| changes.remove(i).1).unwrap_or_default();
                s.provide_changes(&store, ch);
            }
            Event::ServerItems { store, items } => {
                let r = items
                    .iter()
                    .map(|i| ItemResult { handle: i.handle, status: 201, luid: Some(format!("L{}", i.server_id)) })
                    .collect();
                s.server_item_results(&store, r);
            }
            Event::Finished(r) => {
                assert_eq!(urls[0], URL);
                assert!(urls[1..].iter().all(|u| u == RESP));
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
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::Slow), ("notes", SyncMode::Slow)], 150_000));
    let mut changes: Vec<Change> = (0..1000).map(|n| Change::Add { luid: format!("c{n}"), data: vcard(n) }).collect();
    // One item too large for any message (a large object): refused, not sent.
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
    for m in &pkg3 {
        for c in &m.body {
            if let Command::Sync(sy) = c {
                let store = sy.source.as_ref().unwrap().loc_uri.clone();
                let n = if store == "./contacts" { 1000 } else { 1 };
                assert_eq!(sy.number_of_changes, Some(n));
                for ic in &sy.commands {
                    let Command::Add(a) = ic else { panic!("{ic:?}") };
                    assert_eq!(a.meta.as_ref().unwrap().type_.as_deref(), Some("text/vcard"));
                    let luid = a.items[0].source.as_ref().unwrap().loc_uri.clone();
                    *seen.entry(luid).or_insert(0) += 1;
                }
            }
        }
    }
    assert_eq!(seen.len(), 1001);
    assert!(seen.values().all(|&n| n == 1), "every item exactly once");
    assert!(!seen.contains_key("huge"));
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
    assert_eq!(huge.status, 413);
    assert!(huge.error.as_deref().unwrap().contains("too large"));
    assert_eq!(c.item_results.iter().filter(|i| i.status == 201).count(), 1000);
    assert_eq!(r.store("./notes").unwrap().item_results[0].status, 201);
}

#[test]
fn auth_retry_once_with_the_challenged_type_and_nonce() {
    let mut peer = Peer::new(100_000);
    peer.auth_script = vec![(401, Some(AUTH_MD5)), (212, None)];
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::TwoWay)], 150_000));
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
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::TwoWay)], 150_000));
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
    let mut s = ClientSession::new(config(&[("contacts", SyncMode::TwoWay)], 150_000));
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
        let mut s = ClientSession::new(config(&[("contacts", mode)], 150_000));
        let Event::Send { body, .. } = s.poll() else { panic!() };
        let m = xml::decode(&body).unwrap();
        let codes: Vec<_> = m.body.iter().filter_map(|c| if let Command::Alert(a) = c { a.data } else { None }).collect();
        assert_eq!(codes, [mode.code()]);
    }
}
