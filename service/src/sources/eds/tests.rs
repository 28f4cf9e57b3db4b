//! Tests against a real evolution-data-server on a private bus (see `testbus`).
//! They skip, with a printed reason, when EDS is not installed.

use std::time::{Duration, Instant};

use base64::Engine as _;
use zbus::fdo::DBusProxy;
use zbus::names::BusName;
use zbus::proxy::CacheProperties;

use super::proxies::{AddressBookCursorProxy, AddressBookFactoryProxy, AddressBookProxy};
use super::registry::SYSTEM_ADDRESS_BOOK;
use super::testbus::TestBus;
use super::*;
use crate::item::{Item, WireFormat};
use crate::sources::{Source, SourceError, SourceItem};

pub(super) const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Opens `uid` with raw proxies (the opened book lives as long as `conn`).
async fn raw_book(conn: &zbus::Connection, eds: &Eds, uid: &str) -> AddressBookProxy<'static> {
    let factory = AddressBookFactoryProxy::builder(conn)
        .destination(eds.services().address_book.clone().unwrap())
        .unwrap()
        .build()
        .await
        .unwrap();
    let (path, bus) = factory.open_address_book(uid).await.unwrap();
    let book = AddressBookProxy::builder(conn)
        .destination(bus)
        .unwrap()
        .path(path)
        .unwrap()
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .unwrap();
    book.open().await.unwrap();
    book
}

fn seed_vcard(i: usize) -> String {
    let mut lines = vec!["BEGIN:VCARD".to_string(), "VERSION:3.0".to_string()];
    match i % 4 {
        0 => lines.extend(["N:王;伟;;;".into(), format!("FN:王伟 {i}")]),
        1 => lines.extend(["N:Иванов;Пётр;;;".into(), format!("FN:Пётр Иванов {i}")]),
        2 => lines.extend(["N:الحسن;علي;;;".into(), format!("FN:علي الحسن {i}")]),
        _ => lines.extend([
            "N:Müller;Jürgen;Maria;Dr.;".into(),
            format!("FN:Dr. Jürgen Müller {i}"),
        ]),
    }
    lines.push(format!("TEL;TYPE=CELL:+49 170 {i:07}"));
    lines.push(format!("EMAIL;TYPE=HOME:user{i}@example.org"));
    if i.is_multiple_of(3) {
        lines.push("ADR;TYPE=HOME:;;Hauptstraße 1;Berlin;;10115;Germany".into());
        lines.push("NOTE:Line one\\nline two\\, with comma\\; and semicolon".into());
        lines.push("CATEGORIES:Family,VIP".into());
    }
    lines.push("END:VCARD".into());
    lines.join("\r\n") + "\r\n"
}

async fn seed(book: &AddressBookProxy<'_>, vcards: &[String]) -> Vec<String> {
    let mut uids = Vec::new();
    for chunk in vcards.chunks(2000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        uids.extend(book.create_contacts(&refs, 0).await.unwrap());
    }
    uids
}

fn contact(item: &SourceItem) -> &crate::item::Contact {
    match item
        .item
        .as_ref()
        .unwrap_or_else(|e| panic!("{}: {e}", item.local_id))
    {
        Item::Contact(c) => c,
        other => panic!("not a contact: {other:?}"),
    }
}

#[tokio::test]
async fn lists_converted_contacts_with_photos() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.expect("EDS on the test bus");
    assert_eq!(
        eds.services().address_book.as_deref(),
        Some("org.gnome.evolution.dataserver.AddressBook10")
    );
    let books = eds.address_books().await.unwrap();
    assert_eq!(books[0].uid, SYSTEM_ADDRESS_BOOK, "{books:?}");
    assert_eq!(books[0].backend, "local");

    let raw = raw_book(&conn, &eds, SYSTEM_ADDRESS_BOOK).await;
    let mut vcards: Vec<String> = (0..20).map(seed_vcard).collect();
    vcards.push(format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:with-photo\r\nN:Photo;Tiny;;;\r\nFN:Tiny Photo\r\nPHOTO;ENCODING=b;TYPE=PNG:{TINY_PNG}\r\nX-CUSTOM-FIELD:keep me\r\nEND:VCARD\r\n"
    ));
    let uids = seed(&raw, &vcards).await;
    assert_eq!(uids.len(), 21);
    // EDS moved the photo into a file.
    let stored = raw.get_contact("with-photo").await.unwrap();
    assert!(stored.contains("PHOTO;VALUE=uri:file://"), "{stored}");

    let mut book = eds.open_address_book(&books[0]).await.unwrap();
    assert_eq!(book.id(), "eds:system-address-book");
    assert_eq!(book.class(), crate::class::DataClass::Contacts);
    assert_eq!(book.display_name(), books[0].display_name);
    let items = book.list().await.unwrap();
    assert_eq!(items.len(), 21);
    let mut listed: Vec<&str> = items.iter().map(|i| i.local_id.as_str()).collect();
    listed.sort();
    let mut expected: Vec<&str> = uids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);

    let photo_item = items.iter().find(|i| i.local_id == "with-photo").unwrap();
    let c = contact(photo_item);
    let photo = c.photo.as_ref().expect("photo re-embedded");
    assert_eq!(photo.mime, "image/png");
    assert_eq!(
        photo.data,
        base64::engine::general_purpose::STANDARD
            .decode(TINY_PNG)
            .unwrap()
    );
    assert!(c.extra.iter().all(|p| p.name != "PHOTO"));
    let wire = String::from_utf8(
        photo_item
            .item
            .as_ref()
            .unwrap()
            .to_wire(WireFormat::VCard30),
    )
    .unwrap();
    assert!(wire.contains("PHOTO;ENCODING=b;TYPE=PNG:iVBOR"), "{wire}");
    assert!(wire.contains("X-CUSTOM-FIELD:keep me\r\n"), "{wire}");

    for item in &items {
        let c = contact(item);
        let wire =
            String::from_utf8(item.item.as_ref().unwrap().to_wire(WireFormat::VCard30)).unwrap();
        assert!(!wire.contains("X-EVOLUTION"), "{wire}");
        assert!(c.rev.is_some());
        if item.local_id == "with-photo" {
            continue;
        }
        let n: usize = c
            .formatted_name
            .as_deref()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let original = Item::from_wire(vcards[n].as_bytes(), WireFormat::VCard30).unwrap();
        let Item::Contact(o) = original else {
            panic!("not a contact")
        };
        assert_eq!(c.name, o.name);
        assert_eq!(c.tels, o.tels);
        assert_eq!(c.emails, o.emails);
        assert_eq!(c.addresses, o.addresses);
        assert_eq!(c.note, o.note);
        assert_eq!(c.categories, o.categories);
    }
}

#[tokio::test]
async fn revision_changes_after_modify_and_photo_file_loss_is_per_item() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let raw = raw_book(&conn, &eds, SYSTEM_ADDRESS_BOOK).await;
    seed(&raw, &[seed_vcard(1), seed_vcard(2)]).await;
    let info = eds.address_books().await.unwrap().remove(0);
    let mut book = eds.open_address_book(&info).await.unwrap();
    let rev1 = book.revision().await.unwrap();
    assert!(!rev1.is_empty());
    assert_eq!(
        book.revision().await.unwrap(),
        rev1,
        "stable without changes"
    );

    raw.create_contacts(
        &[&format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m-1\r\nFN:Before\r\nPHOTO;ENCODING=b;TYPE=PNG:{TINY_PNG}\r\nEND:VCARD\r\n")],
        0,
    )
    .await
    .unwrap();
    let rev2 = book.revision().await.unwrap();
    assert_ne!(rev2, rev1);
    raw.modify_contacts(&[&format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m-1\r\nFN:After\r\nPHOTO;ENCODING=b;TYPE=PNG:{TINY_PNG}\r\nEND:VCARD\r\n")], 0)
        .await
        .unwrap();
    let rev3 = book.revision().await.unwrap();
    assert_ne!(rev3, rev2);
    let items = book.list().await.unwrap();
    let m = items.iter().find(|i| i.local_id == "m-1").unwrap();
    assert_eq!(contact(m).formatted_name.as_deref(), Some("After"));

    // Remove the photo file behind EDS's back: that one item fails, the rest lists.
    let stored = raw.get_contact("m-1").await.unwrap();
    let card = crate::item::vcard::parse(stored.as_bytes(), WireFormat::VCard30).unwrap();
    let uri = card
        .props
        .iter()
        .find(|p| p.name == "PHOTO")
        .expect("photo uri")
        .text_value();
    let path = url::Url::parse(&uri).unwrap().to_file_path().unwrap();
    assert!(path.starts_with(bus.data_dir()), "{}", path.display());
    std::fs::remove_file(&path).unwrap();
    let items = book.list().await.unwrap();
    assert_eq!(items.len(), 3);
    let m = items.iter().find(|i| i.local_id == "m-1").unwrap();
    let err = m.item.as_ref().unwrap_err();
    assert!(err.contains("cannot read the PHOTO file"), "{err}");
    assert_eq!(items.iter().filter(|i| i.item.is_ok()).count(), 2);
}

/// The PID of the process owning `name`.
pub(super) async fn owner_pid(conn: &zbus::Connection, name: &str) -> u32 {
    let dbus = DBusProxy::new(conn).await.unwrap();
    dbus.get_connection_unix_process_id(BusName::try_from(name).unwrap())
        .await
        .unwrap()
}

pub(super) fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        // A killed factory may linger as a zombie until dbus-daemon reaps it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.split_whitespace().nth(2) == Some("Z") {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn reopens_after_the_factory_is_killed_or_the_book_closed() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let factory = eds.services().address_book.clone().unwrap();
    {
        let raw = raw_book(&conn, &eds, SYSTEM_ADDRESS_BOOK).await;
        seed(&raw, &(0..5).map(seed_vcard).collect::<Vec<_>>()).await;
    }
    let info = eds.address_books().await.unwrap().remove(0);
    let mut book = eds.open_address_book(&info).await.unwrap();
    let rev = book.revision().await.unwrap();
    assert_eq!(book.list().await.unwrap().len(), 5);
    let path_before = book.proxy().inner().path().to_string();

    // 1. Kill the factory between calls.
    let pid = owner_pid(&conn, &factory).await;
    let status = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    wait_gone(pid);
    let t = Instant::now();
    assert_eq!(
        book.revision().await.unwrap(),
        rev,
        "revision survives a factory restart"
    );
    eprintln!("reopen after kill + Revision: {:?}", t.elapsed());
    assert_eq!(book.list().await.unwrap().len(), 5);
    let new_pid = owner_pid(&conn, &factory).await;
    assert_ne!(new_pid, pid);
    assert_ne!(book.proxy().inner().path().to_string(), path_before);

    // 2. Kill it again and call list() first (not revision()).
    std::process::Command::new("kill")
        .arg("-KILL")
        .arg(new_pid.to_string())
        .status()
        .unwrap();
    wait_gone(new_pid);
    assert_eq!(book.list().await.unwrap().len(), 5);

    // 3. The book is closed under us (same factory, stale path): UnknownMethod → reopen.
    book.proxy().close().await.unwrap();
    assert_eq!(book.revision().await.unwrap(), rev);
    assert_eq!(book.list().await.unwrap().len(), 5);
}

#[tokio::test]
async fn errors_are_mapped() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let bogus = EdsSourceInfo {
        kind: EdsSourceKind::AddressBook,
        uid: "no-such-source".into(),
        display_name: "Nope".into(),
        backend: "local".into(),
    };
    let err = eds.open_address_book(&bogus).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SourceError::Store { .. }), "{err:?}");
    assert!(
        text.starts_with("eds:no-such-source: opening the address book failed:"),
        "{text}"
    );
    assert!(text.contains("g-io-error-quark 1"), "{text}");
    drop(bus);

    // Without EDS on the bus: Unavailable.
    let Some(bus) = TestBus::start() else { return };
    for e in std::fs::read_dir(bus.dir().join("services")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let conn = bus.connect().await;
    // The daemon reads its service dir on demand; ask it to reload to be sure.
    DBusProxy::new(&conn)
        .await
        .unwrap()
        .reload_config()
        .await
        .unwrap();
    let err = Eds::new(conn).await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn paged_listing_gives_every_contact_once_and_the_cursor_guards_the_revision() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let raw = raw_book(&conn, &eds, SYSTEM_ADDRESS_BOOK).await;
    let n = 1_203;
    let uids = seed(&raw, &(0..n).map(seed_vcard).collect::<Vec<_>>()).await;
    let info = eds.address_books().await.unwrap().remove(0);
    let mut book = eds.open_address_book(&info).await.unwrap();

    let mut pages = Vec::new();
    let mut restarts = 0;
    let none = std::collections::HashSet::new();
    book.list_pages(&none, &mut |page| match page {
        crate::sources::Page::Items(items) => pages.push(items),
        crate::sources::Page::Unchanged(_) => panic!("nothing is known"),
        crate::sources::Page::Restart => restarts += 1,
    })
    .await
    .unwrap();
    assert_eq!(restarts, 0);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![500, 500, 203]);
    let mut paged: Vec<String> = pages.iter().flatten().map(|i| contact(i).to_vcard(WireFormat::VCard30)).map(|v| String::from_utf8(v).unwrap()).collect();
    let mut listed: Vec<String> = book.list().await.unwrap().iter().map(|i| String::from_utf8(contact(i).to_vcard(WireFormat::VCard30)).unwrap()).collect();
    paged.sort();
    listed.sort();
    assert_eq!(paged.len(), n);
    assert_eq!(paged, listed);

    // the digests of what was read: the same contacts come back unconverted, except one
    // that changed since
    let mut known: std::collections::HashSet<[u8; 16]> = pages.iter().flatten().map(|i| i.digest.unwrap()).collect();
    assert_eq!(known.len(), n);
    let changed = contact(&pages[1][7]).uid.clone().unwrap();
    let mut edited = contact(&pages[1][7]).clone();
    edited.note = Some("changed".into());
    raw.modify_contacts(&[edited.to_eds_vcard().as_str()], 0).await.unwrap();
    let (mut unchanged, mut converted) = (0, Vec::new());
    book.list_pages(&known, &mut |page| match page {
        crate::sources::Page::Unchanged(d) => unchanged += d.len(),
        crate::sources::Page::Items(items) => converted.extend(items),
        crate::sources::Page::Restart => {}
    })
    .await
    .unwrap();
    assert_eq!((unchanged, converted.len()), (n - 1, 1));
    assert_eq!(converted[0].local_id, changed);
    assert!(known.insert(converted[0].digest.unwrap()), "a changed contact has a new digest");

    // a revision that is no longer the book's: the cursor refuses to step
    let stale = book.revision().await.unwrap();
    raw.remove_contacts(&[uids[0].as_str()], 0).await.unwrap();
    assert_ne!(book.revision().await.unwrap(), stale);
    let err = book.cursor_pages(&stale, &none, &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, SourceError::Store { .. }), "{err:?}");
    let mut count = 0;
    book.list_pages(&none, &mut |page| {
        if let crate::sources::Page::Items(items) = page {
            count += items.len();
        }
    })
    .await
    .unwrap();
    assert_eq!(count, n - 1);
}

/// Measures listing 10 000 contacts: GetContactList versus a cursor in steps of 500.
/// `cargo test -p imsync --lib eds::tests::measure -- --ignored --nocapture`
/// (run each mode alone for a meaningful peak RSS: `measure_get_contact_list` or
/// `measure_cursor`).
async fn measure(mode: &str) {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let raw = raw_book(&conn, &eds, SYSTEM_ADDRESS_BOOK).await;
    let n = 10_000;
    let t = Instant::now();
    seed(&raw, &(0..n).map(seed_vcard).collect::<Vec<_>>()).await;
    eprintln!("seeded {n} in {:?}", t.elapsed());
    let info = eds.address_books().await.unwrap().remove(0);
    let mut book = eds.open_address_book(&info).await.unwrap();
    // Warm up EDS (its first query after seeding is slower) and the allocator.
    let _ = raw.get_contact_list_uids("").await.unwrap();
    clear_peak_rss();
    let rss0 = rss_kb("VmRSS");
    let t = Instant::now();
    let items = match mode {
        "list" => book.list().await.unwrap(),
        _ => {
            let rev = book.revision().await.unwrap();
            let path = book
                .proxy()
                .get_cursor(
                    "",
                    &["family_name", "given_name"],
                    &["ascending", "ascending"],
                )
                .await
                .unwrap();
            let cursor = AddressBookCursorProxy::builder(&conn)
                .destination(book.proxy().inner().destination().to_owned())
                .unwrap()
                .path(path)
                .unwrap()
                .build()
                .await
                .unwrap();
            let mut items = Vec::new();
            let mut origin = 1; // BEGIN
            loop {
                let (got, vcards, _total, _pos) = cursor.step(&rev, 3, origin, 500).await.unwrap();
                origin = 0;
                for v in vcards {
                    items.push(AddressBook::convert(v).await);
                }
                if got < 500 {
                    break;
                }
            }
            cursor.dispose().await.unwrap();
            items
        }
    };
    let took = t.elapsed();
    assert_eq!(items.len(), n);
    assert!(items.iter().all(|i| i.item.is_ok()));
    eprintln!(
        "MEASURE {mode}: {n} contacts in {took:?}; RSS before {rss0} kB, peak {} kB (+{} kB)",
        rss_kb("VmHWM"),
        rss_kb("VmHWM").saturating_sub(rss0)
    );
}

fn rss_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim_start_matches(':')
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn clear_peak_rss() {
    // Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::test]
#[ignore = "slow: seeds 10 000 contacts; run by hand to measure"]
async fn measure_get_contact_list() {
    measure("list").await;
}

#[tokio::test]
#[ignore = "slow: seeds 10 000 contacts; run by hand to measure"]
async fn measure_cursor() {
    measure("cursor").await;
}
