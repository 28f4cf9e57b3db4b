//! Codec micro-benchmarks: encode and decode of a ~150 KB SyncML message (a client's Sync
//! with vCard Replace commands, as a slow sync sends them at the server's MaxMsgSize) in
//! XML and WBXML.
//!
//!     cargo bench -p imsync-syncml --bench codec

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use syncml::types::{Command, Item, ItemCmd, ItemData, Location, Message, Meta, Status, Sync, SyncHdr};
use syncml::Encoding;

/// A realistic contact (~450 bytes, UTF-8 names, several TEL/EMAIL) for item `n`.
fn vcard(n: usize) -> Vec<u8> {
    let names = [
        ("Müller", "Jürgen"),
        ("王", "伟"),
        ("Øvergård", "Søren"),
        ("Dvořák", "Zoë"),
        ("佐藤", "健"),
        ("Brown", "Emily"),
    ];
    let (fam, giv) = names[n % names.len()];
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:pas-id-{n:016X}\r\nN:{fam};{giv};;;\r\nFN:{giv} {fam}\r\n\
         TEL;TYPE=CELL:+49 151 {:07}\r\nTEL;TYPE=HOME,VOICE:+49 30 {:07}\r\nTEL;TYPE=WORK,FAX:+41 44 {:07}\r\n\
         EMAIL;TYPE=HOME:user{n}@example.org\r\nEMAIL;TYPE=WORK:user{n}@work.example.com\r\n\
         ADR;TYPE=HOME:;;Hauptstraße {};Berlin;BE;10115;Germany\r\nNOTE:Met at the conference\\, table {n}\r\n\
         ORG:Example GmbH;Entwicklung\r\nCATEGORIES:Family,VIP\r\nBDAY:1970-01-31\r\nREV:2026-11-24T20:10:43Z\r\nEND:VCARD\r\n",
        n * 7 % 10_000_000,
        n * 13 % 10_000_000,
        n * 17 % 10_000_000,
        n % 200
    )
    .into_bytes()
}

/// A client message of about `target` encoded bytes (in WBXML): SyncHdr + one Sync with
/// Replace commands.
fn message(target: usize) -> Message {
    let mut sync = Sync {
        cmd_id: "2".into(),
        target: Some(Location::new("contacts")),
        source: Some(Location::new("./contacts")),
        number_of_changes: Some(10_000),
        ..Sync::default()
    };
    let mut size = 0;
    let mut n = 0;
    while size < target {
        let data = vcard(n);
        size += data.len() + 40;
        sync.commands.push(Command::Replace(ItemCmd {
            cmd_id: (n + 3).to_string(),
            meta: Some(Meta::with_type("text/vcard")),
            items: vec![Item {
                source: Some(Location::new((n + 1).to_string())),
                data: Some(ItemData::Bytes(data)),
                ..Item::default()
            }],
            ..ItemCmd::default()
        }));
        n += 1;
    }
    Message {
        hdr: SyncHdr {
            ver_dtd: "1.2".into(),
            ver_proto: "SyncML/1.2".into(),
            session_id: "1764012345".into(),
            msg_id: "3".into(),
            target: Location::new("http://127.0.0.1:8080/syncevolution"),
            source: Location::new("imsync-0123456789abcdef"),
            meta: Some(Meta { max_msg_size: Some(524_288), max_obj_size: Some(4_194_304), ..Meta::default() }),
            ..SyncHdr::default()
        },
        body: vec![Command::Sync(sync)],
        final_: false,
    }
}

/// The server's reply to a message of `n` Replace commands: one Status per item (what
/// the client decodes most during a backup).
fn status_reply(n: usize) -> Message {
    let st = |cmd_id: usize, cmd_ref: &str, cmd: &str, src: Option<String>, data: u16| {
        Command::Status(Status {
            cmd_id: cmd_id.to_string(),
            msg_ref: "3".into(),
            cmd_ref: cmd_ref.into(),
            cmd: cmd.into(),
            source_refs: src.into_iter().collect(),
            data,
            ..Status::default()
        })
    };
    let mut body = vec![st(1, "0", "SyncHdr", None, 200), st(2, "2", "Sync", None, 200)];
    for i in 0..n {
        body.push(st(i + 3, &(i + 3).to_string(), "Replace", Some((i + 1).to_string()), 201));
    }
    Message {
        hdr: SyncHdr {
            ver_dtd: "1.2".into(),
            ver_proto: "SyncML/1.2".into(),
            session_id: "1764012345".into(),
            msg_id: "3".into(),
            target: Location::new("imsync-0123456789abcdef"),
            source: Location::new("http://127.0.0.1:8080/syncevolution"),
            ..SyncHdr::default()
        },
        body,
        final_: false,
    }
}

fn codec(c: &mut Criterion) {
    let msg = message(150_000);
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let name = match enc {
            Encoding::Wbxml => "wbxml",
            Encoding::Xml => "xml",
        };
        let bytes = enc.encode(&msg);
        assert_eq!(enc.decode(&bytes).expect("round trip"), msg);
        let mut g = c.benchmark_group(format!("{name} 150KB message"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("encode", |b| b.iter(|| enc.encode(black_box(&msg))));
        g.bench_function("decode", |b| b.iter(|| enc.decode(black_box(&bytes)).unwrap()));
        // what the session does per item to fill a message up to MaxMsgSize
        if let Command::Sync(s) = &msg.body[0] {
            g.bench_function("encoded_command_len (all items)", |b| {
                b.iter(|| s.commands.iter().map(|c| enc.encoded_command_len(black_box(c))).sum::<usize>())
            });
        }
        g.finish();
    }
    let reply = status_reply(330);
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let name = match enc {
            Encoding::Wbxml => "wbxml",
            Encoding::Xml => "xml",
        };
        let bytes = enc.encode(&reply);
        assert_eq!(enc.decode(&bytes).expect("round trip"), reply);
        let mut g = c.benchmark_group(format!("{name} 330 statuses"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("decode", |b| b.iter(|| enc.decode(black_box(&bytes)).unwrap()));
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
