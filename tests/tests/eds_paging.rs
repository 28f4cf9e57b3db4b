//! The pull-style listing of imsync's EDS address book (`Source::next_page`, `Source::count`)
//! against the real evolution-data-server: 1 234 contacts come in cursor pages of at most
//! 500, each exactly once and with its digest; a listing continued after the book changed
//! (5 contacts added after the first page: the cursor's revision guard fails) does not fail
//! and still gives every contact that was there before. A listing abandoned half-way (the
//! source dropped, as when a backup fails or is cancelled) does not leave its cursor in EDS.

use std::collections::HashSet;

use harness::{EnvOptions, PhoneOptions, TestEnv};
use imsync::sources::eds::Eds;
use imsync::sources::{Source, SourceItem};

const SEEDED: usize = 1_234;
const PAGE: usize = 500;

/// Checks a page and adds its ids to `seen`; returns how many of them were seen before.
fn take(page: &[SourceItem], seen: &mut HashSet<String>) -> usize {
    assert!(page.len() <= PAGE, "a page of {} contacts", page.len());
    let mut repeats = 0;
    for item in page {
        assert!(item.digest.is_some(), "{}: no digest", item.local_id);
        if let Err(e) = &item.item {
            panic!("{}: {e}", item.local_id);
        }
        if !seen.insert(item.local_id.clone()) {
            repeats += 1;
        }
    }
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eds_address_book_pages_on_demand_and_survives_a_change_while_listed() {
    let opts = EnvOptions { phone: PhoneOptions { keyring: false, start_daemon: false }, server: false };
    let env = TestEnv::with_options("eds_paging", opts).await.unwrap();
    let seeded: HashSet<String> = env.phone.seed(&env.contacts(SEEDED)).await.unwrap().into_iter().collect();
    assert_eq!(seeded.len(), SEEDED);

    // imsync's own source, on a connection of its own (as a job has)
    let conn = env.phone.bus.connect().await.unwrap();
    let eds = Eds::new(conn).await.unwrap();
    let info = eds.address_books().await.unwrap().remove(0);
    assert_eq!(info.uid, "system-address-book");
    let mut book = eds.open_address_book(&info).await.unwrap();
    assert_eq!(book.count().await.unwrap(), Some(SEEDED as u32));

    // --- a listing with nothing changing: every contact exactly once
    let mut seen = HashSet::new();
    let mut sizes = Vec::new();
    let mut page = book.next_page(true).await.unwrap();
    while let Some(items) = page {
        sizes.push(items.len());
        assert_eq!(take(&items, &mut seen), 0, "a contact came twice while nothing changed");
        page = book.next_page(false).await.unwrap();
    }
    assert_eq!(sizes, [500, 500, 234]);
    assert_eq!(seen, seeded, "every seeded contact, nothing else");
    assert!(book.next_page(false).await.unwrap().is_none(), "a complete listing stays complete");

    // --- again, and the book changes after the first page
    let mut seen = HashSet::new();
    let first = book.next_page(true).await.unwrap().expect("a first page");
    assert_eq!(first.len(), PAGE);
    take(&first, &mut seen);
    let added = env.phone.seed(&env.contacts_range(SEEDED, 5)).await.unwrap();
    let (mut pages, mut pulled, mut repeats) = (1, first.len(), 0);
    while let Some(items) = book.next_page(false).await.unwrap() {
        pages += 1;
        pulled += items.len();
        repeats += take(&items, &mut seen);
        assert!(pages < 20, "the listing does not end");
    }
    let lost: Vec<&String> = seeded.difference(&seen).collect();
    assert!(lost.is_empty(), "{} of the seeded contacts were not listed, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    let others: Vec<&String> = seen.iter().filter(|id| !seeded.contains(*id) && !added.contains(*id)).collect();
    assert!(others.is_empty(), "contacts that were never added: {others:?}");
    eprintln!(
        "changed while listed: {pages} pages, {pulled} contacts pulled, {repeats} repeats, {} distinct ({} of the 5 added)",
        seen.len(),
        added.iter().filter(|id| seen.contains(*id)).count()
    );
    assert_eq!(book.count().await.unwrap(), Some(SEEDED as u32 + 5));

    // --- a listing abandoned after its first page: EDS does not keep the cursor
    let probe = env.phone.bus.connect().await.unwrap();
    assert_eq!(eds_cursors(&probe).await, Vec::<String>::new(), "cursors left by the complete listings");
    assert_eq!(book.next_page(true).await.unwrap().map(|p| p.len()), Some(PAGE));
    let open = eds_cursors(&probe).await;
    assert_eq!(open.len(), 1, "the open listing's cursor: {open:?}");
    drop(book);
    let mut left = open;
    for _ in 0..50 {
        left = eds_cursors(&probe).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "the abandoned listing's cursor is still in EDS: {left:?}");
}

/// The address-book cursors EDS has exported: the object paths of the address-book backends
/// with "Cursor" in them that have no children.
async fn eds_cursors(conn: &zbus::Connection) -> Vec<String> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
    let mut found = Vec::new();
    for name in dbus.list_names().await.unwrap() {
        if !name.starts_with("org.gnome.evolution.dataserver.AddressBook") {
            continue;
        }
        let mut todo = vec!["/".to_string()];
        while let Some(path) = todo.pop() {
            let xml: String = match conn
                .call_method(Some(name.as_str()), path.as_str(), Some("org.freedesktop.DBus.Introspectable"), "Introspect", &())
                .await
            {
                Ok(reply) => reply.body().deserialize().unwrap(),
                Err(_) => continue,
            };
            for node in xml.split("<node name=\"").skip(1).filter_map(|rest| rest.split('"').next()) {
                let child = if path == "/" { format!("/{node}") } else { format!("{path}/{node}") };
                if child.contains("Cursor") {
                    found.push(child.clone());
                }
                todo.push(child);
            }
        }
    }
    // the cursors themselves, not the nodes above them
    let all = found.clone();
    found.retain(|p| !all.iter().any(|q| q.starts_with(&format!("{p}/"))));
    found
}
