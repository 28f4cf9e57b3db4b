//! Decode every recorded SyncML XML message (tests/traces), assert on the
//! decoded structures, and check that encode -> decode gives the same model.

use std::path::{Path, PathBuf};

use syncml::codec::xml;
use syncml::types::*;

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces")
}

fn load(rel: &str) -> Message {
    let bytes = std::fs::read(traces_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    xml::decode(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn all_trace_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(traces_dir()).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "xml") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    out
}

fn count(m: &Message, name: &str) -> usize {
    m.body.iter().filter(|c| c.name() == name).count()
}

fn statuses(m: &Message) -> Vec<&Status> {
    m.body.iter().filter_map(|c| if let Command::Status(s) = c { Some(s) } else { None }).collect()
}

fn syncs(m: &Message) -> Vec<&Sync> {
    m.body.iter().filter_map(|c| if let Command::Sync(s) = c { Some(s) } else { None }).collect()
}

#[test]
fn every_trace_decodes_and_round_trips() {
    let files = all_trace_files();
    assert!(files.len() >= 28, "expected all XML traces, found {}", files.len());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let m = xml::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(m.hdr.ver_dtd, "1.2", "{}", f.display());
        assert_eq!(m.hdr.ver_proto, "SyncML/1.2");
        let enc = xml::encode(&m);
        let back = xml::decode(&enc).unwrap_or_else(|e| panic!("{} re-encoded: {e}", f.display()));
        assert_eq!(back, m, "{}: round trip changed the model", f.display());
        // Deterministic.
        assert_eq!(xml::encode(&back), enc);
    }
}

#[test]
fn s1_client_message_1() {
    let m = load("s1-refresh-from-client/1-client-put-devinf-get-alert203.xml");
    assert_eq!(m.hdr.session_id, "5");
    assert_eq!(m.hdr.msg_id, "1");
    assert_eq!(m.hdr.target.loc_uri, "http://127.0.0.1:9902/syncevolution");
    assert_eq!(m.hdr.source.loc_uri, "phone-A-0001");
    assert_eq!(m.hdr.source.loc_name.as_deref(), Some("test"));
    let cred = m.hdr.cred.as_ref().unwrap();
    assert_eq!(cred.meta.type_.as_deref(), Some(AUTH_MD5));
    assert_eq!(cred.meta.format.as_deref(), Some("b64"));
    assert_eq!(cred.data, "x2EHlRSZiRM209YwocVlVg==");
    let meta = m.hdr.meta.as_ref().unwrap();
    assert_eq!((meta.max_msg_size, meta.max_obj_size), (Some(150000), Some(4000000)));
    assert!(m.final_);
    assert_eq!((count(&m, "Put"), count(&m, "Get"), count(&m, "Alert")), (1, 1, 4));
    let Command::Put(put) = &m.body[0] else { panic!("Put first") };
    let Some(ItemData::DevInf(di)) = &put.items[0].data else { panic!("DevInf in Put") };
    assert_eq!(di.dev_id, "phone-A-0001");
    assert_eq!(di.data_stores.len(), 4);
    for (i, c) in m.body.iter().skip(2).enumerate() {
        let Command::Alert(a) = c else { panic!() };
        assert_eq!(a.cmd_id, (i + 3).to_string());
        assert_eq!(a.data, Some(203));
        let anchor = a.items[0].meta.as_ref().unwrap().anchor.as_ref().unwrap();
        assert_eq!(anchor.last, None);
        assert_eq!(anchor.next.as_deref(), Some("20261124T201026Z"));
    }
}

#[test]
fn s1_server_message_2_status_chal_devinf_alerts() {
    let m = load("s1-refresh-from-client/2-server-status-results-devinf-alert.xml");
    assert_eq!(
        m.hdr.resp_uri.as_deref(),
        Some("http://127.0.0.1:9902/syncevolution?sessionid=19598931061795551025")
    );
    let st = statuses(&m);
    assert_eq!(st.len(), 7);
    assert_eq!(st[0].cmd, "SyncHdr");
    assert_eq!(st[0].cmd_ref, "0");
    assert_eq!(st[0].data, 212);
    let chal = st[0].chal.as_ref().unwrap();
    assert_eq!(chal.meta.type_.as_deref(), Some(AUTH_MD5));
    assert_eq!(chal.meta.next_nonce.as_deref(), Some("RDIqW0QjISE="));
    assert_eq!((st[1].cmd.as_str(), st[1].cmd_ref.as_str(), st[1].data), ("Put", "1", 200));
    assert_eq!((st[2].cmd.as_str(), st[2].target_refs[0].as_str()), ("Get", "./devinf12"));
    // Status for our Alert carries the echoed anchor in Item/Data.
    assert_eq!(st[4].cmd, "Alert");
    assert_eq!(st[4].target_refs, vec!["contacts".to_string()]);
    assert_eq!(
        st[4].items[0].data,
        Some(ItemData::Anchor(Anchor { last: None, next: Some("20261124T201026Z".into()) }))
    );
    // Results with the server DevInf.
    let results: Vec<_> =
        m.body.iter().filter_map(|c| if let Command::Results(r) = c { Some(r) } else { None }).collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].cmd_ref, "2");
    let Some(ItemData::DevInf(di)) = &results[0].items[0].data else { panic!("no DevInf") };
    assert_eq!(di.man.as_deref(), Some("Patrick Ohly"));
    assert_eq!(di.mod_.as_deref(), Some("SyncEvolution"));
    assert_eq!(di.sw_v.as_deref(), Some("3.4.0.47"));
    assert_eq!(di.dev_id, "http://127.0.0.1:9902/syncevolution");
    assert_eq!(di.dev_typ, "workstation");
    assert!(di.utc && di.support_large_objs && di.support_number_of_changes);
    let refs: Vec<_> = di.data_stores.iter().map(|d| d.source_ref.as_str()).collect();
    assert_eq!(refs, ["./calendar", "./contacts", "./notes", "./sms"]);
    let contacts = di.data_store("contacts").unwrap();
    assert_eq!(contacts.rx_pref.as_ref().unwrap().ct_type, "text/vcard");
    assert_eq!(contacts.rx_pref.as_ref().unwrap().ver_ct, "3.0");
    assert_eq!(contacts.rx[0].ct_type, "text/x-vcard");
    assert_eq!(contacts.rx[0].ver_ct, "2.1");
    assert_eq!(contacts.tx_pref.as_ref().unwrap().ct_type, "text/vcard");
    let caps: Vec<_> = contacts.ct_caps.iter().map(|c| (c.ct_type.as_str(), c.ver_ct.as_str())).collect();
    assert_eq!(caps, [("text/vcard", "3.0"), ("text/x-vcard", "2.1")]);
    let tel = contacts.ct_caps[0].properties.iter().find(|p| p.name == "TEL").unwrap();
    assert_eq!(tel.params[0].name, "TYPE");
    assert!(tel.params[0].val_enums.contains(&"CELL".to_string()));
    let version = contacts.ct_caps[0].properties.iter().find(|p| p.name == "VERSION").unwrap();
    assert_eq!(version.val_enums, ["3.0"]);
    assert_eq!(version.max_occur, Some(1));
    assert_eq!(contacts.sync_types, [1, 2, 3, 4, 5, 6, 7, 390001]);
    let sms = di.data_store("./sms").unwrap();
    assert_eq!(sms.rx_pref.as_ref().unwrap().ct_type, "text/x-vmessage");
    assert!(sms.ct_caps.is_empty());
    let cal = di.data_store("calendar").unwrap();
    assert_eq!(cal.rx_pref.as_ref().unwrap().ct_type, "text/calendar");
    assert_eq!(cal.rx[0].ct_type, "text/x-vcalendar");
    // The server's own alerts.
    let alerts: Vec<_> =
        m.body.iter().filter_map(|c| if let Command::Alert(a) = c { Some(a) } else { None }).collect();
    assert_eq!(alerts.len(), 4);
    assert!(alerts.iter().all(|a| a.data == Some(203)));
    assert_eq!(alerts[1].items[0].target.as_ref().unwrap().loc_uri, "./contacts");
    assert_eq!(alerts[1].items[0].source.as_ref().unwrap().loc_uri, "contacts");
    assert_eq!(alerts[1].items[0].meta.as_ref().unwrap().max_obj_size, Some(4000000));
    assert!(m.final_);
}

#[test]
fn s1_client_message_3_sync_adds() {
    let m = load("s1-refresh-from-client/3-client-status-sync-add.xml");
    let s = syncs(&m);
    assert_eq!(s.len(), 4);
    let n: Vec<_> = s.iter().map(|s| s.commands.len()).collect();
    assert_eq!(n, [2, 3, 1, 2]);
    let Command::Add(add) = &s[1].commands[0] else { panic!() };
    assert_eq!(add.meta.as_ref().unwrap().type_.as_deref(), Some("text/vcard"));
    assert_eq!(add.items[0].source.as_ref().unwrap().loc_uri, "1");
    let data = add.items[0].data.as_ref().unwrap().as_bytes().unwrap();
    let text = std::str::from_utf8(data).unwrap();
    // The wire data uses CRLF inside CDATA; the decoder keeps it byte for byte.
    assert!(text.starts_with("BEGIN:VCARD\r\nVERSION:3.0\r\n"), "{text:?}");
    assert!(text.contains("FN:Jürgen Müller1\r\n"));
}

#[test]
fn s1_server_message_4_statuses_and_empty_syncs() {
    let m = load("s1-refresh-from-client/4-server-status-sync.xml");
    let st = statuses(&m);
    assert_eq!(st.len(), 13);
    let adds: Vec<_> = st.iter().filter(|s| s.cmd == "Add").collect();
    assert_eq!(adds.len(), 8);
    assert!(adds.iter().all(|s| s.data == 201));
    let s = syncs(&m);
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|s| s.number_of_changes == Some(0) && s.commands.is_empty()));
    assert_eq!(s[1].target.as_ref().unwrap().loc_uri, "./contacts");
}

#[test]
fn s2_server_adds_and_map() {
    let m = load("s2-first-sync-slow-map/4-server-status-sync-add.xml");
    let s = syncs(&m);
    let n: Vec<_> = s.iter().map(|s| (s.number_of_changes, s.commands.len())).collect();
    assert_eq!(n, [(Some(2), 2), (Some(3), 3), (Some(1), 1), (Some(2), 2)]);
    let Command::Add(add) = &s[1].commands[2] else { panic!() };
    assert_eq!(add.items[0].source.as_ref().unwrap().loc_uri, "2");
    let m5 = load("s2-first-sync-slow-map/5-client-status-map.xml");
    let maps: Vec<_> = m5.body.iter().filter_map(|c| if let Command::Map(m) = c { Some(m) } else { None }).collect();
    assert_eq!(maps.len(), 4);
    assert_eq!(maps[1].items.len(), 3);
    assert_eq!(maps[1].target.loc_uri, "contacts");
    assert_eq!(maps[1].items[2].target.loc_uri, "2");
    let m6 = load("s2-first-sync-slow-map/6-server-status-map-final.xml");
    let st = statuses(&m6);
    assert_eq!(st.iter().filter(|s| s.cmd == "Map" && s.data == 200).count(), 4);
    assert!(m6.final_);
}

#[test]
fn s3_replace_delete() {
    let m1 = load("s3-two-way-replace-delete/1-client-put-devinf-get-alert200.xml");
    let Command::Alert(a) = &m1.body[3] else { panic!() };
    let anchor = a.items[0].meta.as_ref().unwrap().anchor.as_ref().unwrap();
    assert_eq!(anchor.last.as_deref(), Some("20261124T201026Z"));
    assert_eq!(anchor.next.as_deref(), Some("20261124T201055Z"));
    let m3 = load("s3-two-way-replace-delete/3-client-status-sync-replace-delete.xml");
    let s = syncs(&m3);
    assert!(matches!(s[1].commands[0], Command::Replace(_)));
    let Command::Delete(d) = &s[1].commands[1] else { panic!() };
    assert_eq!(d.items[0].data, None);
    let m4 = load("s3-two-way-replace-delete/4-server-status-sync.xml");
    let st = statuses(&m4);
    assert!(st.iter().any(|s| s.cmd == "Replace" && s.cmd_ref == "9" && s.data == 200));
    assert!(st.iter().any(|s| s.cmd == "Delete" && s.cmd_ref == "10" && s.data == 200));
}

#[test]
fn s5_basic_auth_and_server_put() {
    let m1 = load("s5-minimal-client-sms/1-client.xml");
    assert_eq!(m1.hdr.cred.as_ref().unwrap().meta.type_.as_deref(), Some(AUTH_BASIC));
    assert_eq!(m1.hdr.cred.as_ref().unwrap().data, "dGVzdDp0ZXN0");
    let m2 = load("s5-minimal-client-sms/2-server.xml");
    let chal = statuses(&m2)[0].chal.clone().unwrap();
    assert_eq!(chal.meta.next_nonce.as_deref(), Some("VixKI18jISE="));
    let put = m2.body.iter().find_map(|c| if let Command::Put(p) = c { Some(p) } else { None }).unwrap();
    let Some(ItemData::DevInf(di)) = &put.items[0].data else { panic!() };
    assert_eq!(di.data_stores.len(), 1);
    assert_eq!(di.data_stores[0].tx_pref.as_ref().unwrap().ver_ct, "1.1");
}

#[test]
fn tolerant_namespaces_and_unknown_elements() {
    let xml = br#"<?xml version="1.0"?>
<!-- comment -->
<SyncML xmlns="syncml:syncml1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>
<SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>a</LocURI></Target><Source><LocURI>b</LocURI></Source>
<Unknown><Deep>x</Deep></Unknown><Meta><MaxMsgSize>1000</MaxMsgSize><EMI>whatever</EMI></Meta></SyncHdr>
<SyncBody><Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd><Data> 200 </Data><Funny/></Status>
<Exec><CmdID>2</CmdID><Item/></Exec><Final/></SyncBody></SyncML>"#;
    let m = xml::decode(xml).unwrap();
    assert_eq!(m.hdr.meta.unwrap().max_msg_size, Some(1000));
    assert_eq!(statuses_owned(&m.body)[0].data, 200);
    assert!(matches!(&m.body[1], Command::Other(o) if o.name == "Exec" && o.cmd_id == "2"));
    assert!(m.final_);
}

fn statuses_owned(body: &[Command]) -> Vec<Status> {
    body.iter().filter_map(|c| if let Command::Status(s) = c { Some(s.clone()) } else { None }).collect()
}

#[test]
fn data_with_markup_is_cdata_and_round_trips() {
    let mut m = load("s1-refresh-from-client/6-server-status-final.xml");
    let payload = "BEGIN:VNOTE\r\nBODY:a<b & c]]>d\r\nEND:VNOTE\r\n".as_bytes().to_vec();
    m.body.push(Command::Add(ItemCmd {
        cmd_id: "9".into(),
        items: vec![Item { data: Some(ItemData::Bytes(payload.clone())), ..Item::default() }],
        ..ItemCmd::default()
    }));
    let enc = xml::encode(&m);
    let s = String::from_utf8(enc.clone()).unwrap();
    assert!(s.contains("<Data><![CDATA[BEGIN:VNOTE\r\nBODY:a<b & c]]]]><![CDATA[>d"), "{s}");
    let back = xml::decode(&enc).unwrap();
    assert_eq!(back, m);
}
