//! vCard micro-benchmarks: what a backup does per contact: parse the vCard EDS hands out
//! (vCard 3.0 with EDS's own properties) and write the wire vCard (3.0 and 2.1).
//!
//!     cargo bench -p imsync --bench vcard

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use imsync::item::{Item, WireFormat};

const EDS_CONTACT: &[u8] = include_bytes!("../src/item/testdata/eds-contact.vcf");

/// A typical generated contact (~450 bytes) as EDS stores it.
fn typical() -> Vec<u8> {
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:pas-id-692B1F5C00000042\r\nX-EVOLUTION-FILE-AS:Müller\\, Jürgen\r\n\
     N:Müller;Jürgen;;;\r\nFN:Jürgen Müller\r\nTEL;TYPE=CELL:+49 151 1234567\r\nTEL;TYPE=HOME,VOICE:+49 30 7654321\r\n\
     EMAIL;TYPE=HOME:juergen.mueller+c1a2b3-0042@example.org\r\nEMAIL;TYPE=WORK:juergen.mueller@work.example.com\r\n\
     ADR;TYPE=HOME:;;Hauptstraße 12;Berlin;BE;10115;Germany\r\nNOTE:Met at the conference\\, table 7 [#42]\r\n\
     ORG:Example GmbH;Entwicklung\r\nCATEGORIES:Family,VIP\r\nBDAY:1970-01-31\r\nREV:2026-11-24T20:10:43Z\r\nEND:VCARD\r\n"
        .as_bytes()
        .to_vec()
}

fn vcard(c: &mut Criterion) {
    for (name, card) in [("typical", typical()), ("eds-contact.vcf", EDS_CONTACT.to_vec())] {
        let item = Item::from_wire(&card, WireFormat::VCard30).expect("parses");
        let mut g = c.benchmark_group(format!("vcard {name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse", |b| b.iter(|| Item::from_wire(black_box(&card), WireFormat::VCard30).unwrap()));
        g.bench_function("write 3.0", |b| b.iter(|| black_box(&item).to_wire(WireFormat::VCard30)));
        g.bench_function("write 2.1", |b| b.iter(|| black_box(&item).to_wire(WireFormat::VCard21)));
        g.bench_function("parse + write 3.0", |b| {
            b.iter(|| Item::from_wire(black_box(&card), WireFormat::VCard30).unwrap().to_wire(WireFormat::VCard30))
        });
        g.finish();
    }
}

criterion_group!(benches, vcard);
criterion_main!(benches);
