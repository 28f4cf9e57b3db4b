//! What each fuzz target does with its input, without any fuzzer dependency:
//! `fuzz_targets/<name>.rs` calls `<name>(data)`, and the workspace test
//! `tests/tests/fuzz_seeds.rs` includes this file and runs every committed
//! seed (`fuzz/seeds/<name>/*`) through the same function.
//!
//! A target fails only by panicking (or by libFuzzer's own limits: time, RSS):
//! every function must return for any input.

use imsync::item::{Item, SmsTimestamp, WireFormat};
use syncml::codec::{wbxml, xml, Encoding};
use syncml::session::{Change, ClientSession, Event, ItemResult, SessionConfig, StoreConfig, SyncMode};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target, by name (the seed directory names).
pub const TARGETS: &[(&str, Target)] = &[
    ("xml_decode", xml_decode),
    ("wbxml_decode", wbxml_decode),
    ("session_receive", session_receive),
    ("vcard", vcard),
    ("icalendar", icalendar),
    ("vmessage", vmessage),
    ("vnote", vnote),
    ("sms_timestamp", sms_timestamp),
];

/// A decoded message is re-encoded in both encodings and decoded again: our
/// own encoder must not panic on anything the decoder accepts, and what we
/// write must decode.
fn reencode(m: &syncml::types::Message) {
    for enc in [Encoding::Xml, Encoding::Wbxml] {
        let bytes = enc.encode(m);
        if let Err(e) = enc.decode(&bytes) {
            panic!("{enc:?}: a message the decoder accepted does not decode after re-encoding: {e}\n{m:#?}");
        }
    }
}

/// SyncML XML decoder (`syncml::codec::xml::decode`).
pub fn xml_decode(data: &[u8]) {
    if let Ok(m) = xml::decode(data) {
        reencode(&m);
    }
}

/// SyncML WBXML decoder (`syncml::codec::wbxml::decode`).
pub fn wbxml_decode(data: &[u8]) {
    if let Ok(m) = wbxml::decode(data) {
        reencode(&m);
    }
}

/// The client session fed `data` as every server answer (HTTP 200, Content-Type
/// by sniffing): it must end (Finished or Failed) within a bounded number of
/// polls, never panic.
pub fn session_receive(data: &[u8]) {
    let mut cfg = SessionConfig::new("http://server.invalid/sync", "fuzz-device", "1");
    cfg.max_msg_size = 20_000;
    cfg.stores.push(StoreConfig {
        local_uri: "./contacts".into(),
        remote_uri: "contacts".into(),
        mode: SyncMode::TwoWay,
        last_anchor: Some("1".into()),
        next_anchor: "2".into(),
        content_type: "text/vcard".into(),
        content_version: "3.0".into(),
    });
    let ct = match Encoding::sniff(data) {
        Encoding::Xml => syncml::session::CONTENT_TYPE_XML,
        Encoding::Wbxml => syncml::session::CONTENT_TYPE_WBXML,
    };
    let mut s = ClientSession::new(cfg);
    let mut luid = 0u32;
    for _ in 0..64 {
        match s.poll() {
            Event::Send { .. } => s.receive(200, Some(ct), data),
            Event::NeedChanges { store, .. } => {
                let data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nN:;A;;;\r\nEND:VCARD\r\n".to_vec();
                s.provide_changes(&store, vec![Change::Add { luid: "c1".into(), data }, Change::Delete { luid: "c2".into() }]);
            }
            Event::NeedMoreChanges { store } => s.more_changes(&store, vec![], true),
            Event::ServerItems { store, items } => {
                let results = items
                    .iter()
                    .map(|i| {
                        luid += 1;
                        ItemResult { handle: i.handle, status: 201, luid: Some(format!("l{luid}")) }
                    })
                    .collect();
                s.server_item_results(&store, results);
            }
            Event::Finished(_) | Event::Failed(_) => return,
        }
    }
}

/// Parse `data` in `format`; what parses is written in every format and
/// parsed again (the writers must accept whatever the parsers produce).
fn item_roundtrip(data: &[u8], formats: &[WireFormat]) {
    for &f in formats {
        if let Ok(item) = Item::from_wire(data, f) {
            let _ = item.uid();
            for &out in ALL_FORMATS {
                let wire = item.to_wire(out);
                let _ = Item::from_wire(&wire, out);
            }
        }
    }
}

const ALL_FORMATS: &[WireFormat] = &[
    WireFormat::VCard30,
    WireFormat::VCard21,
    WireFormat::ICal20,
    WireFormat::VCal10,
    WireFormat::PlainText,
    WireFormat::VNote11,
    WireFormat::VMessage11,
];

/// vCard 3.0 and 2.1 (`Item::from_wire`).
pub fn vcard(data: &[u8]) {
    item_roundtrip(data, &[WireFormat::VCard30, WireFormat::VCard21]);
}

/// iCalendar 2.0 and vCalendar 1.0.
pub fn icalendar(data: &[u8]) {
    item_roundtrip(data, &[WireFormat::ICal20, WireFormat::VCal10]);
}

/// vMessage 1.1.
pub fn vmessage(data: &[u8]) {
    item_roundtrip(data, &[WireFormat::VMessage11]);
}

/// vNote 1.1 and plain-text memos.
pub fn vnote(data: &[u8]) {
    item_roundtrip(data, &[WireFormat::VNote11, WireFormat::PlainText]);
}

/// ModemManager timestamps (`SmsTimestamp::parse`); what parses must survive
/// its own accessors.
pub fn sms_timestamp(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(Some(t)) = SmsTimestamp::parse(s) {
            let canonical = t.canonical();
            let again = SmsTimestamp::parse(&canonical);
            let again = again.unwrap_or_else(|e| panic!("{s:?} parsed, its canonical form {canonical:?} does not: {e}"));
            let again = again.expect("canonical form is not empty");
            assert_eq!(again.unix_seconds(), t.unix_seconds(), "{s:?} -> {canonical:?}");
            let _ = t.to_string();
        }
    }
}
