//! Tests of the item model: golden files and round trips.
//!
//! Golden files: every `testdata/NAME.vcf` is parsed and written as vCard 3.0 and 2.1;
//! the output must equal `testdata/expected/NAME.30.vcf` / `NAME.21.vcf`. Run with
//! `IMSYNC_UPDATE_GOLDEN=1` to (re)write the expected files, then review the diff.
//! Every file in `testdata/malformed/` must fail to parse (without panicking).

use std::path::{Path, PathBuf};

use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/item/testdata")
}

fn contact(item: &Item) -> &Contact {
    match item {
        Item::Contact(c) => c,
        other => panic!("not a contact: {other:?}"),
    }
}

fn assert_lines_short(bytes: &[u8], what: &str) {
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() <= 75,
            "{what}: line of {} octets: {}",
            line.len(),
            String::from_utf8_lossy(line)
        );
    }
    assert!(
        bytes
            .windows(2)
            .filter(|w| w[1] == b'\n')
            .all(|w| w[0] == b'\r'),
        "{what}: bare LF in output"
    );
}

#[test]
fn golden_files() {
    let dir = testdata();
    let update = std::env::var_os("IMSYNC_UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vcf"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 8,
        "golden inputs missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for input in inputs {
        let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&input).unwrap();
        let item =
            Item::from_wire(&data, WireFormat::VCard30).unwrap_or_else(|e| panic!("{stem}: {e}"));
        for (format, suffix) in [(WireFormat::VCard30, "30"), (WireFormat::VCard21, "21")] {
            let out = item.to_wire(format);
            // the consuming writer (a backup's) gives the same bytes
            assert_eq!(item.clone().into_wire(format), out, "{stem}.{suffix}: into_wire differs from to_wire");
            let expected_path = dir.join("expected").join(format!("{stem}.{suffix}.vcf"));
            if update {
                std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
                std::fs::write(&expected_path, &out).unwrap();
            }
            let expected = std::fs::read(&expected_path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with IMSYNC_UPDATE_GOLDEN=1)",
                    expected_path.display()
                )
            });
            if out != expected {
                failures.push(format!(
                    "{stem}.{suffix}:\n--- expected\n{}\n--- got\n{}",
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&out)
                ));
            }
            if format == WireFormat::VCard30 {
                assert_lines_short(&out, &stem);
            }
            // Writing is a fixed point: parse our own output, write again, same bytes,
            // and the same contact (apart from the derived FN of 3.0).
            let again = Item::from_wire(&out, format)
                .unwrap_or_else(|e| panic!("{stem}.{suffix} reparse: {e}"));
            assert_eq!(
                String::from_utf8_lossy(&again.to_wire(format)),
                String::from_utf8_lossy(&out),
                "{stem}.{suffix}: not a fixed point"
            );
            let mut a = contact(&again).clone();
            let mut b = contact(&item).clone();
            if b.formatted_name.is_none() {
                a.formatted_name = None;
            }
            a.extra.retain(|p| !p.name.starts_with("X-"));
            b.extra.retain(|p| !p.name.starts_with("X-"));
            assert_eq!(a, b, "{stem}.{suffix}: model changed through the wire");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malformed_files_fail_cleanly() {
    let dir = testdata().join("malformed");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        for f in [WireFormat::VCard30, WireFormat::VCard21] {
            assert!(
                Item::from_wire(&data, f).is_err(),
                "{} parsed",
                path.display()
            );
        }
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn parsed_fields() {
    let data = std::fs::read(testdata().join("eds-contact.vcf")).unwrap();
    let item = Item::from_wire(&data, WireFormat::VCard30).unwrap();
    assert_eq!(item.uid(), Some("pas-id-0123456789ABCDEF"));
    let c = contact(&item);
    assert_eq!(c.name.as_ref().unwrap().family, "Müller");
    assert_eq!(c.name.as_ref().unwrap().prefixes, "Dr.");
    assert_eq!(c.tels.len(), 2);
    assert_eq!(c.tels[1].types, vec!["HOME", "VOICE"]);
    assert_eq!(c.tels[1].value, "+49 30 1234567");
    assert_eq!(c.emails[0].types, vec!["HOME"]);
    assert_eq!(c.addresses[0].street, "Hauptstraße 12");
    assert_eq!(c.addresses[0].country, "Germany");
    assert_eq!(c.birthday.as_deref(), Some("1970-01-31"));
    assert_eq!(c.anniversary.as_deref(), Some("1999-06-12"));
    assert_eq!(c.categories, vec!["Family", "VIP"]);
    assert_eq!(c.impp[0].uri, "xmpp:juergen@example.org");
    assert_eq!(c.rev.as_deref(), Some("2026-11-24T20:10:43Z"));
    assert!(c.photo.is_none());
    let names: Vec<&str> = c.extra.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "X-EVOLUTION-SPOUSE",
            "X-EVOLUTION-BLOG-URL",
            "PHOTO",
            "X-JABBER"
        ]
    );
    // The http photo stays a URI; EDS-internal parameters and FILE-AS are gone.
    let out = String::from_utf8(item.to_wire(WireFormat::VCard30)).unwrap();
    assert!(
        out.contains("PHOTO;VALUE=uri:https://example.org/juergen.jpg\r\n"),
        "{out}"
    );
    assert!(
        !out.contains("X-EVOLUTION-E164") && !out.contains("FILE-AS") && !out.contains("UI-SLOT"),
        "{out}"
    );
    assert!(out.contains("X-EVOLUTION-SPOUSE:Anna\r\n"));
}

#[test]
fn photo_is_embedded_bytes() {
    let data = std::fs::read(testdata().join("photo.vcf")).unwrap();
    let item = Item::from_wire(&data, WireFormat::VCard30).unwrap();
    let photo = contact(&item).photo.clone().unwrap();
    assert_eq!(photo.mime, "image/png");
    assert!(photo.data.starts_with(b"\x89PNG"));
    assert_eq!(photo.data.len(), 70);
    let out = String::from_utf8(item.to_wire(WireFormat::VCard30)).unwrap();
    assert!(out.contains("PHOTO;ENCODING=b;TYPE=PNG:iVBOR"), "{out}");
    let out21 = String::from_utf8(item.to_wire(WireFormat::VCard21)).unwrap();
    assert!(
        out21.contains("PHOTO;ENCODING=BASE64;TYPE=PNG:\r\n iVBOR"),
        "{out21}"
    );
    // 2.1 photo reads back as the same bytes.
    let back = Item::from_wire(out21.as_bytes(), WireFormat::VCard21).unwrap();
    assert_eq!(contact(&back).photo.as_ref(), Some(&photo));
}

#[test]
fn qp_21_round_trip() {
    let data = std::fs::read(testdata().join("qp-21.vcf")).unwrap();
    let item = Item::from_wire(&data, WireFormat::VCard21).unwrap();
    let c = contact(&item);
    assert_eq!(c.formatted_name.as_deref(), Some("Jürgen Müller"));
    assert_eq!(
        c.note.as_deref(),
        Some("Zeile 1\nZeile 2, mit Komma; und Semikolon\n备注")
    );
    assert_eq!(c.addresses[0].street, "Hauptstraße 1;Hinterhaus");
    assert_eq!(c.addresses[0].locality, "Berlin");
    assert!(c.tels[0].pref);
    assert_eq!(c.tels[0].types, vec!["CELL"]);
    assert_eq!(c.tels[1].types, vec!["WORK", "VOICE"]);
    assert_eq!(c.photo.as_ref().unwrap().mime, "image/png");
    let out = item.to_wire(WireFormat::VCard21);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Zeile 1=0D=0AZeile 2"),
        "{text}"
    );
    assert!(text.contains("TEL;CELL;PREF:+49 170 1111111\r\n"), "{text}");
    let back = Item::from_wire(&out, WireFormat::VCard21).unwrap();
    assert_eq!(&back, &item);
    // and through 3.0
    let via30 = Item::from_wire(&item.to_wire(WireFormat::VCard30), WireFormat::VCard30).unwrap();
    assert_eq!(contact(&via30).note, c.note);
    assert_eq!(contact(&via30).addresses, c.addresses);
}

#[test]
fn latin1_21() {
    let data = std::fs::read(testdata().join("latin1-21.vcf")).unwrap();
    let item = Item::from_wire(&data, WireFormat::VCard21).unwrap();
    let c = contact(&item);
    assert_eq!(c.name.as_ref().unwrap().family, "François");
    assert_eq!(c.formatted_name.as_deref(), Some("Lefèvre François"));
    assert_eq!(c.note.as_deref(), Some("café € 5"));
}

#[test]
fn deterministic_and_version_line() {
    let c = Contact {
        uid: Some("u1".into()),
        formatted_name: Some("A".into()),
        tels: vec![Tel {
            value: "1".into(),
            types: vec!["CELL".into()],
            pref: true,
        }],
        ..Default::default()
    };
    let item = Item::Contact(c);
    let a = item.to_wire(WireFormat::VCard30);
    assert_eq!(a, item.clone().to_wire(WireFormat::VCard30));
    assert_eq!(
        String::from_utf8(a).unwrap(),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:;;;;\r\nFN:A\r\nTEL;TYPE=CELL,PREF:1\r\nUID:u1\r\nEND:VCARD\r\n"
    );
    let b = String::from_utf8(item.to_wire(WireFormat::VCard21)).unwrap();
    assert!(b.starts_with("BEGIN:VCARD\r\nVERSION:2.1\r\n"), "{b}");
    assert_eq!(WireFormat::VCard21.mime(), "text/x-vcard");
    assert_eq!(WireFormat::VCard30.mime(), "text/vcard");
}

#[test]
fn fuzz_no_panic() {
    // Mutations of valid inputs must never panic (errors are fine).
    let seeds: Vec<Vec<u8>> = [
        "qp-21.vcf",
        "utf8-names.vcf",
        "photo.vcf",
        "eds-contact.vcf",
    ]
    .iter()
    .map(|n| std::fs::read(testdata().join(n)).unwrap())
    .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let specials = b";:,\"=\\\r\n \t\xc3\xff.";
    for seed in &seeds {
        for _ in 0..400 {
            let mut d = seed.clone();
            for _ in 0..(rnd() % 6 + 1) {
                let pos = (rnd() as usize) % d.len().max(1);
                match rnd() % 4 {
                    0 => d.truncate(pos),
                    1 if !d.is_empty() => {
                        let at = pos.min(d.len() - 1);
                        d[at] = specials[(rnd() as usize) % specials.len()];
                    }
                    2 => d.insert(
                        pos.min(d.len()),
                        specials[(rnd() as usize) % specials.len()],
                    ),
                    _ => {
                        if pos < d.len() {
                            d.remove(pos);
                        }
                    }
                }
            }
            for f in [WireFormat::VCard30, WireFormat::VCard21] {
                if let Ok(item) = Item::from_wire(&d, f) {
                    let out = item.to_wire(f);
                    let _ = Item::from_wire(&out, f);
                }
            }
        }
    }
}
