//! Codec micro-benchmarks: encode and decode of a ~150 KB SyncML message (a client's Sync
//! with vCard Replace commands, as a slow sync sends them at the server's MaxMsgSize) in
//! XML and WBXML.
//!
//!     cargo bench -p imsync-syncml --bench codec

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use syncml::types::{Command, Message};
use syncml::Encoding;

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

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
    let mut items = Vec::new();
    let mut size = 0;
    while size < target {
        let data = vcard(items.len());
        size += data.len() + 40;
        items.push(data);
    }
    fixtures::client_sync(items)
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
    let reply = fixtures::status_reply(330);
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
