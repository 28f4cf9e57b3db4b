//! The decoder must return an error, never panic, on hostile input.

use std::path::Path;

use syncml::codec::{xml, DecodeError};

fn trace(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces").join(rel)).unwrap()
}

#[test]
fn every_truncation_of_a_real_message_is_an_error() {
    let full = trace("s1-refresh-from-client/4-server-status-sync.xml");
    assert!(xml::decode(&full).is_ok());
    for cut in 0..full.len() {
        // Everything before the closing root tag is incomplete.
        let r = xml::decode(&full[..cut]);
        if cut < full.len() - 1 - "</SyncML>".len() {
            assert!(r.is_err(), "prefix of {cut} bytes decoded");
        }
    }
}

#[test]
fn garbage_is_an_error() {
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"\0\0\0\0",
        b"HTTP/1.1 500 Internal Server Error",
        b"<html><body>500</body></html>",
        b"<SyncML>",
        b"<SyncML></SyncML>",
        b"<SyncML><SyncHdr/><SyncBody/></SyncML>",
        b"<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody><Status><CmdRef>1</CmdRef><Data>abc</Data></Status></SyncBody></SyncML>",
        b"<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody><Status><CmdRef>1</CmdRef><Data>99999999</Data></Status></SyncBody></SyncML>",
        b"<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody><Alert><Data>&bogus;</Data></Alert></SyncBody></SyncML>",
        b"<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody><Add><Item><Data>\xff\xfe</Data></Item></Add></SyncBody></SyncML>",
        b"<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody></SyncBody></SyncML><SyncML/>",
        b"<a><b></a></b>",
        b"<SyncML><![CDATA[x",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><SyncML>&a;</SyncML>",
        b"\xef\xbb\xbf<<<<>>>>",
    ];
    for i in inputs {
        assert!(xml::decode(i).is_err(), "{:?} decoded", String::from_utf8_lossy(i));
    }
    assert!(matches!(xml::decode(b"<html/>"), Err(DecodeError::WrongRoot { .. })));
}

#[test]
fn deep_nesting_is_rejected() {
    let mut s = String::from("<SyncML><SyncHdr><MsgID>1</MsgID></SyncHdr><SyncBody><Sync>");
    for _ in 0..10_000 {
        s.push_str("<Sync>");
    }
    let r = xml::decode(s.as_bytes());
    assert!(matches!(r, Err(DecodeError::TooDeep { max: 64, .. })), "{r:?}");
}

#[test]
fn mutated_real_messages_never_panic() {
    // Deterministic pseudo-random byte flips / insertions / deletions.
    let base = trace("s2-first-sync-slow-map/4-server-status-sync-add.xml");
    let mut seed: u64 = 0x1234_5678_9abc_def0;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let specials = b"<>/&;![]\"'=\0\xff";
    for _ in 0..3000 {
        let mut m = base.clone();
        for _ in 0..(1 + next() % 4) {
            let pos = (next() as usize) % m.len();
            match next() % 3 {
                0 => m[pos] = specials[(next() as usize) % specials.len()],
                1 => {
                    m.remove(pos);
                }
                _ => m.insert(pos, specials[(next() as usize) % specials.len()]),
            }
        }
        let _ = xml::decode(&m);
    }
}
