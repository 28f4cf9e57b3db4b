//! Calendar, task-list and memo-list sources, and the write side (restore) of every EDS
//! source, against a real evolution-data-server on a private bus (see `testbus`).

use std::path::Path;
use std::time::Instant;

use zbus::proxy::CacheProperties;

use super::proxies::{CalendarFactoryProxy, CalendarProxy};
use super::testbus::TestBus;
use super::tests::{owner_pid, wait_gone, TINY_PNG};
use super::*;
use crate::item::{
    split_instance_id, CalTime, CalendarItem, CalendarKind, Contact, Item, Photo, WireFormat,
};
use crate::sources::{Source, SourceItem, WriteOp, WriteResult};

fn golden(name: &str) -> CalendarItem {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/item/testdata/cal")
        .join(name);
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("vcs") => WireFormat::VCal10,
        Some("txt") => WireFormat::PlainText,
        Some("vnt") => WireFormat::VNote11,
        _ => WireFormat::ICal20,
    };
    match Item::from_wire(&std::fs::read(&path).unwrap(), format).unwrap() {
        Item::Calendar(c) => c,
        other => panic!("{other:?}"),
    }
}

async fn raw_calendar(
    conn: &zbus::Connection,
    eds: &Eds,
    kind: EdsSourceKind,
) -> CalendarProxy<'static> {
    let factory = CalendarFactoryProxy::builder(conn)
        .destination(eds.services().calendar.clone().unwrap())
        .unwrap()
        .build()
        .await
        .unwrap();
    let uid = kind.system_uid();
    let (path, bus) = match kind {
        EdsSourceKind::TaskList => factory.open_task_list(uid).await.unwrap(),
        EdsSourceKind::MemoList => factory.open_memo_list(uid).await.unwrap(),
        _ => factory.open_calendar(uid).await.unwrap(),
    };
    let cal = CalendarProxy::builder(conn)
        .destination(bus)
        .unwrap()
        .path(path)
        .unwrap()
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .unwrap();
    cal.open().await.unwrap();
    cal
}

async fn open(eds: &Eds, kind: EdsSourceKind) -> CalendarSource {
    let info = eds.sources(kind).await.unwrap().remove(0);
    assert_eq!(info.uid, kind.system_uid());
    eds.open_calendar_source(&info).await.unwrap()
}

fn calendar_item(item: &SourceItem) -> &CalendarItem {
    match item
        .item
        .as_ref()
        .unwrap_or_else(|e| panic!("{}: {e}", item.local_id))
    {
        Item::Calendar(c) => c,
        other => panic!("{other:?}"),
    }
}

/// The item as EDS gives it back after a write: LAST-MODIFIED is EDS's (set on every
/// modify), and CREATED is set to "now" when the written item had none.
fn normalised(mut c: CalendarItem) -> CalendarItem {
    for comp in c.master.iter_mut().chain(c.instances.iter_mut()) {
        comp.last_modified = None;
    }
    c
}

fn assert_same(got: &CalendarItem, original: &CalendarItem, what: &str) {
    let mut got = normalised(got.clone());
    let original = normalised(original.clone());
    if let (Some(g), Some(o)) = (got.master.as_mut(), original.master.as_ref()) {
        if o.created.is_none() {
            g.created = None;
        }
    }
    assert_eq!(got, original, "{what}");
}

fn ok(results: &[WriteResult]) {
    for r in results {
        assert!(r.error.is_none(), "{results:?}");
    }
}

const SERIES: &str = "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20240101T120000Z\r\nSUMMARY:Weekly stand-up\r\nDTSTART;TZID=Europe/Berlin:20240108T093000\r\nDTEND;TZID=Europe/Berlin:20240108T094500\r\nRRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20240122T093000\r\nLOCATION:Büro 3.14\r\nEND:VEVENT\r\n";
const MOVED: &str = "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20240101T120000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240129T093000\r\nSUMMARY:Weekly stand-up (moved)\r\nDTSTART;TZID=Europe/Berlin:20240129T110000\r\nDTEND;TZID=Europe/Berlin:20240129T111500\r\nEND:VEVENT\r\n";

#[tokio::test]
async fn lists_events_grouped_with_time_zones() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    assert_eq!(
        eds.services().calendar.as_deref(),
        Some("org.gnome.evolution.dataserver.Calendar8")
    );
    // The generated birthdays calendar is not offered.
    let calendars = eds.calendars().await.unwrap();
    assert!(
        calendars.iter().all(|c| c.backend != "contacts"),
        "{calendars:?}"
    );
    assert_eq!(eds.task_lists().await.unwrap()[0].uid, "system-task-list");
    assert_eq!(eds.memo_lists().await.unwrap()[0].uid, "system-memo-list");

    let raw = raw_calendar(&conn, &eds, EdsSourceKind::Calendar).await;
    let events = [
        SERIES.to_string(),
        "BEGIN:VEVENT\r\nUID:allday-1\r\nDTSTAMP:20240101T120000Z\r\nSUMMARY:Geburtstag (all-day)\r\nDTSTART;VALUE=DATE:20240315\r\nDTEND;VALUE=DATE:20240316\r\nEND:VEVENT\r\n".into(),
        "BEGIN:VEVENT\r\nUID:alarm-1\r\nDTSTAMP:20240101T120000Z\r\nSUMMARY:Dentist\r\nDTSTART:20240110T140000Z\r\nDTEND:20240110T143000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Dentist\r\nTRIGGER;RELATED=START:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n".into(),
        "BEGIN:VEVENT\r\nUID:tokyo-1\r\nDTSTAMP:20240101T120000Z\r\nSUMMARY:会议\r\nDTSTART;TZID=Asia/Tokyo:20240110T090000\r\nDTEND;TZID=Asia/Tokyo:20240110T100000\r\nEND:VEVENT\r\n".into(),
    ];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    assert_eq!(raw.create_objects(&refs, 0).await.unwrap().len(), 4);
    raw.modify_objects(&[MOVED], "this", 0).await.unwrap();

    let mut cal = open(&eds, EdsSourceKind::Calendar).await;
    assert_eq!(
        (cal.id(), cal.class()),
        ("eds:system-calendar", crate::class::DataClass::Calendar)
    );
    assert!(cal.writable());
    let t = Instant::now();
    let items = cal.list().await.unwrap();
    eprintln!("listed {} calendar items in {:?}", items.len(), t.elapsed());
    let ids: Vec<&str> = items.iter().map(|i| i.local_id.as_str()).collect();
    let moved_id = "series-1\u{1f}20240129T093000";
    assert_eq!(
        ids,
        vec!["alarm-1", "allday-1", "series-1", moved_id, "tokyo-1"],
        "the master and the moved occurrence are items of their own"
    );
    assert_eq!(
        split_instance_id(moved_id),
        ("series-1", Some("20240129T093000"))
    );

    let series = calendar_item(&items[2]);
    assert!(series.instances.is_empty());
    assert_eq!(
        series.master.as_ref().unwrap().rrules,
        vec!["FREQ=WEEKLY;COUNT=10;BYDAY=MO"]
    );
    assert_eq!(series.master.as_ref().unwrap().exdates.len(), 1);
    assert_eq!(
        items[2].item.as_ref().unwrap().identity().as_deref(),
        Some("series-1")
    );
    let moved = calendar_item(&items[3]);
    assert!(moved.master.is_none());
    assert_eq!(moved.instances.len(), 1);
    assert_eq!(
        moved.instances[0].summary.as_deref(),
        Some("Weekly stand-up (moved)")
    );
    assert_eq!(
        items[3].item.as_ref().unwrap().identity().as_deref(),
        Some("series-1\u{1f}20240129T083000Z"),
        "identity: the recurrence id as a UTC instant"
    );
    // Olson zones resolve without AddTimezone; each item carries the zones it uses.
    for it in [series, moved] {
        assert_eq!(it.tzids(), vec!["Europe/Berlin"]);
        assert!(it.timezone("Europe/Berlin").is_some());
    }
    assert!(calendar_item(&items[4]).timezone("Asia/Tokyo").is_some());
    for it in &items[2..4] {
        let ics = String::from_utf8(it.item.as_ref().unwrap().to_wire(WireFormat::ICal20)).unwrap();
        assert!(!ics.contains("X-EVOLUTION"), "{ics}");
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 1, "{ics}");
    }
    let vcs =
        String::from_utf8(items[2].item.as_ref().unwrap().to_wire(WireFormat::VCal10)).unwrap();
    assert!(vcs.contains("DTSTART:20240108T083000Z\r\n"), "{vcs}");

    let alarm = calendar_item(&items[0]).master.clone().unwrap();
    assert_eq!(alarm.alarms.len(), 1);
    assert!(
        alarm.alarms[0].extra.is_empty(),
        "X-EVOLUTION-ALARM-UID is dropped: {:?}",
        alarm.alarms[0].extra
    );
    assert!(calendar_item(&items[1])
        .master
        .as_ref()
        .unwrap()
        .start
        .as_ref()
        .unwrap()
        .is_date());
    // Listing twice gives the same bytes (change tracking hashes them).
    let again = cal.list().await.unwrap();
    for (a, b) in items.iter().zip(&again) {
        let (a, b) = (a.item.as_ref().unwrap(), b.item.as_ref().unwrap());
        assert_eq!(a.to_wire(WireFormat::ICal20), b.to_wire(WireFormat::ICal20));
    }
}

#[tokio::test]
async fn events_tasks_and_memos_write_and_list_back() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();

    // Events: a series with EXDATE + moved occurrence (Europe/Berlin) as two items, the
    // moved occurrence given first (its master comes later in the call, after another
    // op); all-day; alarms.
    let mut cal = open(&eds, EdsSourceKind::Calendar).await;
    let rev0 = cal.revision().await.unwrap();
    let series = golden("weekly-series.ics");
    let [master, moved]: [CalendarItem; 2] = series.clone().split().try_into().unwrap();
    let allday = golden("all-day.ics");
    let alarm = golden("alarm.ics");
    let mut duplicate = allday.clone();
    duplicate.master.as_mut().unwrap().summary = Some("same UID".into());
    let results = cal
        .write(vec![
            WriteOp::Add(Item::Calendar(moved.clone())),
            WriteOp::Add(Item::Calendar(allday.clone())),
            WriteOp::Delete {
                local_id: "no-such-uid".into(),
            },
            WriteOp::Add(Item::Calendar(duplicate)),
            WriteOp::Add(Item::Calendar(master.clone())),
            WriteOp::Add(Item::Calendar(alarm.clone())),
            WriteOp::Add(Item::Calendar(golden("task.ics"))),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 7);
    ok(&results[..2]);
    assert!(results[2].error.is_some(), "{results:?}");
    assert!(
        results[3]
            .error
            .as_deref()
            .unwrap()
            .contains("OBJECT_ID_ALREADY_EXISTS"),
        "{results:?}"
    );
    ok(&results[4..6]);
    assert!(
        results[6].error.as_deref().unwrap().contains("only events"),
        "{results:?}"
    );
    let uid = series.uid().unwrap().to_string();
    assert_eq!(
        results[4].local_id.as_deref(),
        Some(uid.as_str()),
        "UIDs are kept"
    );
    let moved_id = format!("{uid}\u{1f}20240129T093000");
    assert_eq!(results[0].local_id.as_deref(), Some(moved_id.as_str()));
    let rev1 = cal.revision().await.unwrap();
    assert_ne!(rev1, rev0);

    let items = cal.list().await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.local_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            uid.as_str(),
            moved_id.as_str(),
            allday.uid().unwrap(),
            alarm.uid().unwrap()
        ]
    );
    for (item, original) in items.iter().zip([&master, &moved, &allday, &alarm]) {
        assert_eq!(
            normalised(calendar_item(item).clone()),
            normalised(original.clone()),
            "{}",
            item.local_id
        );
    }
    let find = |items: &[SourceItem], id: &str| -> CalendarItem {
        normalised(calendar_item(items.iter().find(|i| i.local_id == id).unwrap()).clone())
    };

    // Replace the master: the moved occurrence (an item of its own) stays.
    let mut changed = master.clone();
    changed.master.as_mut().unwrap().summary = Some("Weekly stand-up (changed)".into());
    ok(&cal
        .write(vec![WriteOp::Replace {
            local_id: uid.clone(),
            item: Item::Calendar(changed.clone()),
        }])
        .await
        .unwrap());
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(find(&items, &uid), normalised(changed.clone()));
    assert_eq!(find(&items, &moved_id), normalised(moved.clone()));

    // Replace the moved occurrence by its local id.
    let mut moved2 = moved.clone();
    moved2.instances[0].summary = Some("Weekly stand-up (moved again)".into());
    let results = cal
        .write(vec![WriteOp::Replace {
            local_id: moved_id.clone(),
            item: Item::Calendar(moved2.clone()),
        }])
        .await
        .unwrap();
    ok(&results);
    assert_eq!(results[0].local_id.as_deref(), Some(moved_id.as_str()));
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(find(&items, &moved_id), normalised(moved2.clone()));
    assert_eq!(find(&items, &uid), normalised(changed.clone()));

    // The same instance as a vCalendar 1.0 server sends it back (times in UTC): same
    // identity, and it replaces the stored instance instead of adding one.
    let mut moved3 = moved.clone();
    moved3.instances[0].summary = Some("Weekly stand-up (from 1.0)".into());
    let v1 = Item::from_wire(
        &Item::Calendar(moved3).to_wire(WireFormat::VCal10),
        WireFormat::VCal10,
    )
    .unwrap();
    assert_eq!(v1.identity(), Item::Calendar(moved.clone()).identity());
    ok(&cal
        .write(vec![WriteOp::Replace {
            local_id: moved_id.clone(),
            item: v1,
        }])
        .await
        .unwrap());
    let items = cal.list().await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.local_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let now = find(&items, &moved_id);
    assert_eq!(
        now.instances[0].summary.as_deref(),
        Some("Weekly stand-up (from 1.0)")
    );
    assert_eq!(
        now.instances[0].start.as_ref().unwrap().value_text(),
        "20240129T100000Z"
    );

    // Delete the moved occurrence alone: no EXDATE is added to the master.
    ok(&cal
        .write(vec![WriteOp::Delete {
            local_id: moved_id.clone(),
        }])
        .await
        .unwrap());
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(find(&items, &uid), normalised(changed.clone()));
    // Added again, after its master (in the store already).
    let results = cal
        .write(vec![WriteOp::Add(Item::Calendar(moved.clone()))])
        .await
        .unwrap();
    ok(&results);
    assert_eq!(results[0].local_id.as_deref(), Some(moved_id.as_str()));
    let items = cal.list().await.unwrap();
    assert_eq!(find(&items, &moved_id), normalised(moved.clone()));
    assert_eq!(find(&items, &uid), normalised(changed.clone()));

    // Delete (batched): the series with its moved occurrence, an unknown UID fails alone.
    let results = cal
        .write(vec![
            WriteOp::Delete {
                local_id: moved_id.clone(),
            },
            WriteOp::Delete {
                local_id: uid.clone(),
            },
            WriteOp::Delete {
                local_id: "no-such-uid".into(),
            },
            WriteOp::Delete {
                local_id: allday.uid().unwrap().into(),
            },
        ])
        .await
        .unwrap();
    assert!(
        results[0].error.is_none() && results[1].error.is_none() && results[3].error.is_none(),
        "{results:?}"
    );
    assert!(results[2].error.is_some(), "{results:?}");
    let left: Vec<String> = cal
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.local_id)
        .collect();
    assert_eq!(left, vec![alarm.uid().unwrap().to_string()]);

    // A whole series in one item (as older servers may hold it) is still written whole;
    // it lists as two items.
    ok(&cal
        .write(vec![WriteOp::Add(Item::Calendar(series.clone()))])
        .await
        .unwrap());
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(find(&items, &uid), normalised(master.clone()));
    assert_eq!(find(&items, &moved_id), normalised(moved.clone()));
    // Tasks.
    let mut tasks = open(&eds, EdsSourceKind::TaskList).await;
    assert_eq!(tasks.class(), crate::class::DataClass::Tasks);
    let (t1, t2) = (golden("task.ics"), golden("task-done.ics"));
    ok(&tasks
        .write(vec![
            WriteOp::Add(Item::Calendar(t1.clone())),
            WriteOp::Add(Item::Calendar(t2.clone())),
        ])
        .await
        .unwrap());
    let items = tasks.list().await.unwrap();
    assert_eq!(items.len(), 2);
    for (item, original) in items.iter().zip([&t1, &t2]) {
        let got = calendar_item(item);
        assert_same(got, original, &item.local_id);
        let m = got.master.as_ref().unwrap();
        assert!(m.due.is_some() && m.status.is_some() && m.priority.is_some());
    }

    // Memos, one of them from plain text (no UID: EDS assigns one).
    let mut memos = open(&eds, EdsSourceKind::MemoList).await;
    let m1 = golden("memo.ics");
    let m2 = golden("server-memo.txt");
    let results = memos
        .write(vec![
            WriteOp::Add(Item::Calendar(m1.clone())),
            WriteOp::Add(Item::Calendar(m2.clone())),
        ])
        .await
        .unwrap();
    ok(&results);
    let assigned = results[1].local_id.clone().unwrap();
    assert!(!assigned.is_empty());
    let items = memos.list().await.unwrap();
    let got = items.iter().find(|i| i.local_id == assigned).unwrap();
    let text = got.item.as_ref().unwrap().to_wire(WireFormat::PlainText);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "Ideas for the talk\r\n- slide 1: intro\r\n- slide 2: demo"
    );
    let got = items
        .iter()
        .find(|i| i.local_id == m1.uid().unwrap())
        .unwrap();
    assert_eq!(
        normalised(calendar_item(got).clone()),
        normalised(m1.clone())
    );
    // Replace keeps the UID given as local id.
    let mut m2b = m2.clone();
    m2b.master.as_mut().unwrap().summary = Some("Ideas (edited)".into());
    ok(&memos
        .write(vec![WriteOp::Replace {
            local_id: assigned.clone(),
            item: Item::Calendar(m2b),
        }])
        .await
        .unwrap());
    let items = memos.list().await.unwrap();
    let got = calendar_item(items.iter().find(|i| i.local_id == assigned).unwrap());
    assert_eq!(
        got.master.as_ref().unwrap().summary.as_deref(),
        Some("Ideas (edited)")
    );
}

/// A moved occurrence whose master is not in the store is created by itself; a master
/// and its moved occurrence in one run of Adds are written master first.
#[tokio::test]
async fn detached_instance_added_with_and_without_its_master() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let mut cal = open(&eds, EdsSourceKind::Calendar).await;
    let [master, moved]: [CalendarItem; 2] =
        golden("weekly-series.ics").split().try_into().unwrap();
    let uid = master.uid().unwrap().to_string();
    let moved_id = format!("{uid}\u{1f}20240129T093000");

    // Without a master.
    let results = cal
        .write(vec![WriteOp::Add(Item::Calendar(moved.clone()))])
        .await
        .unwrap();
    ok(&results);
    assert_eq!(results[0].local_id.as_deref(), Some(moved_id.as_str()));
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].local_id, moved_id);
    let mut got = normalised(calendar_item(&items[0]).clone());
    assert!(
        got.instances[0].created.is_some(),
        "CreateObjects sets CREATED"
    );
    got.instances[0].created = None;
    assert_eq!(got, normalised(moved.clone()));
    // The master arriving later (another call): it joins its instance.
    let results = cal
        .write(vec![WriteOp::Add(Item::Calendar(master.clone()))])
        .await
        .unwrap();
    let items = cal.list().await.unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.local_id.as_str()).collect();
    ok(&results);
    assert_eq!(ids, vec![uid.as_str(), moved_id.as_str()]);
    assert_eq!(
        normalised(calendar_item(&items[0]).clone()),
        normalised(master.clone())
    );
    let mut got = normalised(calendar_item(&items[1]).clone());
    got.instances[0].created = None;
    assert_eq!(got, normalised(moved.clone()));

    // Instance before master in one run of Adds (another UID).
    let (mut master_b, mut moved_b) = (master.clone(), moved.clone());
    master_b.set_uid("series-b");
    moved_b.set_uid("series-b");
    let results = cal
        .write(vec![
            WriteOp::Add(Item::Calendar(moved_b.clone())),
            WriteOp::Add(Item::Calendar(master_b.clone())),
        ])
        .await
        .unwrap();
    ok(&results);
    assert_eq!(
        results[0].local_id.as_deref(),
        Some("series-b\u{1f}20240129T093000")
    );
    assert_eq!(results[1].local_id.as_deref(), Some("series-b"));
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 4);
    let b: Vec<CalendarItem> = items
        .iter()
        .filter(|i| i.local_id.starts_with("series-b"))
        .map(|i| normalised(calendar_item(i).clone()))
        .collect();
    assert_eq!(b, vec![normalised(master_b), normalised(moved_b)]);
}

#[tokio::test]
async fn contacts_write_and_list_back() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let info = eds.address_books().await.unwrap().remove(0);
    let mut book = eds.open_address_book(&info).await.unwrap();
    assert!(book.writable());
    let rev0 = book.revision().await.unwrap();
    let png = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(TINY_PNG)
            .unwrap()
    };
    let card = |uid: &str, name: &str| {
        let vcf = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nN:Müller;{name};;;\r\nFN:{name} Müller\r\nTEL;TYPE=CELL:+49 170 1234567\r\nBDAY:1970-01-31\r\nX-ANNIVERSARY:1999-06-12\r\nREV:2024-01-01T12:00:00Z\r\nEND:VCARD\r\n"
        );
        match Item::from_wire(vcf.as_bytes(), WireFormat::VCard30).unwrap() {
            Item::Contact(c) => c,
            other => panic!("{other:?}"),
        }
    };
    let mut with_photo = card("c-photo", "Jürgen");
    with_photo.photo = Some(Photo {
        data: png.clone(),
        mime: "image/png".into(),
    });
    let results = book
        .write(vec![
            WriteOp::Add(Item::Contact(with_photo.clone())),
            WriteOp::Add(Item::Contact(card("c-2", "Anna"))),
            WriteOp::Add(Item::Contact(card("c-2", "Duplicate"))),
            WriteOp::Add(Item::Contact(Contact {
                uid: None,
                ..card("", "Ohne UID")
            })),
            WriteOp::Add(Item::Calendar(golden("memo.ics"))),
        ])
        .await
        .unwrap();
    assert_eq!(results[0].local_id.as_deref(), Some("c-photo"));
    assert_eq!(results[1].local_id.as_deref(), Some("c-2"));
    assert!(
        results[0].error.is_none() && results[1].error.is_none(),
        "{results:?}"
    );
    assert!(
        results[2]
            .error
            .as_deref()
            .unwrap()
            .contains("CONTACT_ID_ALREADY_EXISTS"),
        "{results:?}"
    );
    assert!(
        results[3].error.is_none()
            && results[3]
                .local_id
                .as_deref()
                .unwrap()
                .starts_with("pas-id-"),
        "{results:?}"
    );
    assert!(results[4].error.is_some());
    assert_ne!(book.revision().await.unwrap(), rev0);

    let items = book.list().await.unwrap();
    assert_eq!(items.len(), 3);
    let got = items.iter().find(|i| i.local_id == "c-photo").unwrap();
    let Ok(Item::Contact(c)) = &got.item else {
        panic!("{:?}", got.item)
    };
    assert_eq!(
        c.photo.as_ref().map(|p| &p.data),
        Some(&png),
        "the photo comes back (EDS stored it as a file)"
    );
    assert_eq!(c.anniversary.as_deref(), Some("1999-06-12"));
    assert_eq!(c.birthday.as_deref(), Some("1970-01-31"));
    assert_eq!(
        c.rev.as_deref(),
        Some("2024-01-01T12:00:00Z"),
        "REV is kept on create"
    );
    assert_eq!((&c.name, &c.tels), (&with_photo.name, &with_photo.tels));
    // EDS keeps the anniversary under its own name.
    let stored = book.proxy().get_contact("c-photo").await.unwrap();
    assert!(
        stored.contains("X-EVOLUTION-ANNIVERSARY:1999-06-12"),
        "{stored}"
    );

    // Replace and delete.
    let mut changed = card("ignored", "Anna-Lena");
    changed.photo = None;
    let results = book
        .write(vec![
            WriteOp::Replace {
                local_id: "c-2".into(),
                item: Item::Contact(changed),
            },
            WriteOp::Replace {
                local_id: "no-such".into(),
                item: Item::Contact(card("x", "X")),
            },
            WriteOp::Delete {
                local_id: "c-photo".into(),
            },
        ])
        .await
        .unwrap();
    assert!(
        results[0].error.is_none() && results[2].error.is_none(),
        "{results:?}"
    );
    assert!(results[1].error.is_some(), "{results:?}");
    let items = book.list().await.unwrap();
    assert_eq!(items.len(), 2);
    let got = items.iter().find(|i| i.local_id == "c-2").unwrap();
    let Ok(Item::Contact(c)) = &got.item else {
        panic!()
    };
    assert_eq!(c.formatted_name.as_deref(), Some("Anna-Lena Müller"));
}

#[tokio::test]
async fn calendar_reopens_after_the_factory_is_killed() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let factory = eds.services().calendar.clone().unwrap();
    let mut cal = open(&eds, EdsSourceKind::Calendar).await;
    ok(&cal
        .write(vec![WriteOp::Add(Item::Calendar(golden(
            "weekly-series.ics",
        )))])
        .await
        .unwrap());
    let rev = cal.revision().await.unwrap();
    assert_eq!(
        cal.list().await.unwrap().len(),
        2,
        "master and moved occurrence"
    );

    let pid = owner_pid(&conn, &factory).await;
    assert!(std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    wait_gone(pid);
    assert_eq!(
        cal.revision().await.unwrap(),
        rev,
        "revision survives a factory restart"
    );
    let items = cal.list().await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(calendar_item(&items[1]).instances.len(), 1);
    assert_ne!(owner_pid(&conn, &factory).await, pid);

    // Writes reopen too.
    let pid = owner_pid(&conn, &factory).await;
    std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap();
    wait_gone(pid);
    ok(&cal
        .write(vec![WriteOp::Add(Item::Calendar(golden("all-day.ics")))])
        .await
        .unwrap());
    assert_eq!(cal.list().await.unwrap().len(), 3);
    assert!(matches!(
        calendar_item(&cal.list().await.unwrap()[2])
            .master
            .as_ref()
            .unwrap()
            .start,
        Some(CalTime::Date(_))
    ));
    assert_eq!(
        calendar_item(&cal.list().await.unwrap()[0]).kind,
        CalendarKind::Event
    );
}

/// Measures listing 2 000 events (one in ten a weekly series with a moved occurrence, a
/// third in Europe/Berlin) and writing them back (restore).
/// `cargo test -p imsync --lib eds::cal_tests::measure -- --ignored --nocapture`
#[tokio::test]
#[ignore = "slow: writes 2 000 events; run by hand to measure"]
async fn measure_list_and_write_2000_events() {
    let Some(bus) = TestBus::start() else { return };
    let conn = bus.connect().await;
    let eds = Eds::new(conn.clone()).await.unwrap();
    let mut cal = open(&eds, EdsSourceKind::Calendar).await;
    let series = golden("weekly-series.ics");
    let plain = golden("alarm.ics");
    let items: Vec<WriteOp> = (0..2000)
        .map(|i| {
            let mut it = if i % 10 == 0 {
                series.clone()
            } else {
                plain.clone()
            };
            it.set_uid(&format!("m-{i:05}"));
            WriteOp::Add(Item::Calendar(it))
        })
        .collect();
    let t = Instant::now();
    let results = cal.write(items).await.unwrap();
    eprintln!("MEASURE write 2000 events (200 series): {:?}", t.elapsed());
    ok(&results);
    for _ in 0..3 {
        let t = Instant::now();
        let listed = cal.list().await.unwrap();
        let took = t.elapsed();
        let t2 = Instant::now();
        let bytes: usize = listed
            .iter()
            .map(|i| i.item.as_ref().unwrap().to_wire(WireFormat::ICal20).len())
            .sum();
        eprintln!(
            "MEASURE list {} items: {took:?}; to_wire iCalendar 2.0 {bytes} bytes: {:?}",
            listed.len(),
            t2.elapsed()
        );
    }
}
