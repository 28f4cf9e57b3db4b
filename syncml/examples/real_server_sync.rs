//! Drive `ClientSession` against a real SyncML server over plain HTTP/1.1
//! (std::net only). Not part of the test suite; used to check the state
//! machine against SyncEvolution's server.
//!
//! Usage:
//!   cargo run -p imsync-syncml --example real_server_sync -- URL USER PASS DEVICE_ID STEP
//! STEP:
//!   slow     slow sync (Alert 201) of 3 vCards, sent as Replace (OMA DS slow sync)
//!   slowadd  same, sent as Add
//!   many     slow sync of 1000 vCards (split over several messages)
//!   oneway   one-way-from-client (Alert 202): Replace luid 1, Delete luid 2
//!   twoway   two-way (Alert 200), no local changes (receives server changes)
//!   badauth  wrong password (expects AuthenticationFailed)
//!   stalenonce md5 with a stale nonce (expects a 401 + Chal, then a successful retry)
//! Anchors are kept in /tmp/imsync-example-anchor-DEVICE_ID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use syncml::devinf::{ContentTypeVersion, DataStore, DevInf};
use syncml::session::*;

fn http_post(url: &str, body: &[u8], ct: &str) -> std::io::Result<(u16, Option<String>, Vec<u8>)> {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut content_type = None;
    let mut len: Option<usize> = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(v.to_string()),
                "content-length" => len = v.parse().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut buf = vec![0; n + 2];
            r.read_exact(&mut buf)?;
            out.extend_from_slice(&buf[..n]);
        }
    } else if let Some(n) = len {
        out.resize(n, 0);
        r.read_exact(&mut out)?;
    } else {
        r.read_to_end(&mut out)?;
    }
    Ok((status, content_type, out))
}

fn vcard(n: u32, family: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:{family};Erika{n};;;\r\nFN:Erika{n} {family}\r\nTEL;TYPE=CELL:+4917000000{n}\r\nEND:VCARD\r\n"
    )
    .into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: real_server_sync URL USER PASS DEVICE_ID slow|slowadd|oneway|twoway|badauth");
        std::process::exit(2);
    }
    let (url, user, pass, dev, step) = (&args[1], &args[2], &args[3], &args[4], args[5].as_str());
    let anchor_file = format!("/tmp/imsync-example-anchor-{dev}");
    let last_anchor = std::fs::read_to_string(&anchor_file).ok();
    let counter: u32 = last_anchor.as_deref().and_then(|a| a.trim().parse().ok()).unwrap_or(0);
    let next_anchor = (counter + 1).to_string();
    let (mode, changes) = match step {
        "slow" => (SyncMode::Slow, (1..=3).map(|n| Change::Replace { luid: n.to_string(), data: vcard(n, "Mustermann") }).collect()),
        "many" => (SyncMode::Slow, (1..=1000).map(|n| Change::Replace { luid: n.to_string(), data: vcard(n, "Vielfach") }).collect()),
        "slowadd" => (SyncMode::Slow, (1..=3).map(|n| Change::Add { luid: n.to_string(), data: vcard(n, "Mustermann") }).collect()),
        "oneway" => (
            SyncMode::OneWayFromClient,
            vec![Change::Replace { luid: "1".into(), data: vcard(1, "Geändert") }, Change::Delete { luid: "2".into() }],
        ),
        "twoway" | "badauth" | "stalenonce" => (SyncMode::TwoWay, vec![]),
        other => panic!("unknown step {other}"),
    };
    let password = if step == "badauth" { "wrong".to_string() } else { pass.clone() };
    let devinf = DevInf {
        ver_dtd: "1.2".into(),
        man: Some("imsync".into()),
        mod_: Some("imsync-example".into()),
        oem: Some("-".into()),
        fw_v: Some("1".into()),
        sw_v: Some("0.1".into()),
        hw_v: Some("1".into()),
        dev_id: dev.clone(),
        dev_typ: "phone".into(),
        utc: true,
        support_large_objs: false,
        support_number_of_changes: true,
        data_stores: vec![DataStore {
            source_ref: "./contacts".into(),
            display_name: Some("contacts".into()),
            max_guid_size: Some(64),
            rx_pref: Some(ContentTypeVersion::new("text/vcard", "3.0")),
            tx_pref: Some(ContentTypeVersion::new("text/vcard", "3.0")),
            sync_types: vec![1, 2, 3, 4, 5, 6, 7],
            ..DataStore::default()
        }],
    };
    let cfg = SessionConfig {
        server_url: url.clone(),
        device_id: dev.clone(),
        session_id: next_anchor.clone(),
        credentials: Some(if step == "stalenonce" {
            Credentials { username: user.clone(), password, auth: AuthType::Md5, nonce: Some(b"stale-nonce".to_vec()) }
        } else {
            Credentials { username: user.clone(), password, auth: AuthType::Basic, nonce: None }
        }),
        max_msg_size: 150_000,
        max_obj_size: 4_000_000,
        devinf,
        send_devinf: true,
        known_server_devinf: None,
        stores: vec![StoreConfig {
            local_uri: "./contacts".into(),
            remote_uri: "contacts".into(),
            mode,
            last_anchor: last_anchor.map(|a| a.trim().to_string()),
            next_anchor: next_anchor.clone(),
            content_type: "text/vcard".into(),
            content_version: "3.0".into(),
        }],
    };
    let mut s = ClientSession::new(cfg);
    let mut changes = Some(changes);
    let verbose = std::env::var_os("VERBOSE").is_some();
    loop {
        match s.poll() {
            Event::Send { url, body, content_type } => {
                if verbose {
                    eprintln!(">>> POST {url}\n{}", String::from_utf8_lossy(&body));
                }
                let (st, ct, resp) = http_post(&url, &body, content_type).expect("HTTP");
                if verbose {
                    eprintln!("<<< {st} {ct:?}\n{}", String::from_utf8_lossy(&resp));
                }
                s.receive(st, ct.as_deref(), &resp);
            }
            Event::NeedChanges { store, mode } => {
                println!("NeedChanges {store} {mode:?}");
                let ch = if mode.client_sends() { changes.take().unwrap_or_default() } else { vec![] };
                s.provide_changes(&store, ch);
            }
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                println!("ServerItems {store}: {}", items.len());
                let results = items
                    .iter()
                    .map(|i| {
                        println!("  {:?} server_id={} local_id={:?} {} bytes", i.kind, i.server_id, i.local_id, i.data.len());
                        ItemResult {
                            handle: i.handle,
                            status: if i.kind == ItemKind::Add { 201 } else { 200 },
                            luid: (i.kind == ItemKind::Add).then(|| format!("srv-{}", i.server_id)),
                        }
                    })
                    .collect();
                s.server_item_results(&store, results);
            }
            Event::Finished(r) => {
                println!("FINISHED: {r:#?}");
                if r.stores.iter().all(|s| s.ok()) {
                    std::fs::write(&anchor_file, &next_anchor).unwrap();
                }
                break;
            }
            Event::Failed(e) => {
                println!("FAILED: {e}");
                std::process::exit(1);
            }
        }
    }
}
