//! Tests of the calendar, task and memo items: golden files and round trips.
//!
//! Golden files: every `testdata/cal/NAME.{ics,vcs,txt,vnt}` is parsed (iCalendar 2.0,
//! vCalendar 1.0, plain text, vNote 1.1 by extension) and written in every format of its
//! class (events and tasks: `.ics` + `.vcs`; memos: `.ics` + `.txt` + `.vnt`); the output
//! must equal `testdata/cal/expected/NAME.<ext>`. `IMSYNC_UPDATE_GOLDEN=1` (re)writes the
//! expected files; review the diff. Every file in `testdata/cal/malformed/` must fail.

use std::path::{Path, PathBuf};

use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/item/testdata/cal")
}

fn cal(item: &Item) -> &CalendarItem {
    match item {
        Item::Calendar(c) => c,
        other => panic!("not a calendar item: {other:?}"),
    }
}

fn read(name: &str, format: WireFormat) -> CalendarItem {
    let data = std::fs::read(testdata().join(name)).unwrap();
    cal(&Item::from_wire(&data, format).unwrap_or_else(|e| panic!("{name}: {e}"))).clone()
}

fn text(item: &CalendarItem, format: WireFormat) -> String {
    String::from_utf8(Item::Calendar(item.clone()).to_wire(format)).unwrap()
}

fn format_of(ext: &str) -> Option<WireFormat> {
    Some(match ext {
        "ics" => WireFormat::ICal20,
        "vcs" => WireFormat::VCal10,
        "txt" => WireFormat::PlainText,
        "vnt" => WireFormat::VNote11,
        _ => return None,
    })
}

fn ext_of(format: WireFormat) -> &'static str {
    match format {
        WireFormat::VCal10 => "vcs",
        WireFormat::PlainText => "txt",
        WireFormat::VNote11 => "vnt",
        _ => "ics",
    }
}

#[test]
fn golden_files() {
    let dir = testdata();
    let update = std::env::var_os("IMSYNC_UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "golden inputs missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for input in inputs {
        let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
        let ext = input.extension().unwrap().to_string_lossy().into_owned();
        let Some(in_format) = format_of(&ext) else {
            continue;
        };
        let data = std::fs::read(&input).unwrap();
        let item =
            cal(&Item::from_wire(&data, in_format).unwrap_or_else(|e| panic!("{stem}: {e}")))
                .clone();
        let formats: &[WireFormat] = match item.kind {
            CalendarKind::Journal => &[
                WireFormat::ICal20,
                WireFormat::PlainText,
                WireFormat::VNote11,
            ],
            _ => &[WireFormat::ICal20, WireFormat::VCal10],
        };
        for &format in formats {
            let out = Item::Calendar(item.clone()).to_wire(format);
            let expected_path = dir
                .join("expected")
                .join(format!("{stem}.{}", ext_of(format)));
            if update {
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
                    "{stem}.{}:\n--- expected\n{}\n--- got\n{}",
                    ext_of(format),
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&out)
                ));
            }
            if format != WireFormat::PlainText {
                for line in out.split(|&b| b == b'\n') {
                    assert!(
                        line.len() <= 76,
                        "{stem}.{}: long line {}",
                        ext_of(format),
                        String::from_utf8_lossy(line)
                    );
                }
            }
            // Writing is a fixed point, and iCalendar 2.0 keeps the whole model.
            let again = cal(&Item::from_wire(&out, format)
                .unwrap_or_else(|e| panic!("{stem}.{}: reparse: {e}", ext_of(format))))
            .clone();
            assert_eq!(
                text(&again, format),
                String::from_utf8_lossy(&out),
                "{stem}.{}: not a fixed point",
                ext_of(format)
            );
            if format == WireFormat::ICal20 {
                assert_eq!(again, item, "{stem}: model changed through iCalendar 2.0");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malformed_files_fail_cleanly() {
    let mut n = 0;
    for e in std::fs::read_dir(testdata().join("malformed")).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        for f in [WireFormat::ICal20, WireFormat::VCal10, WireFormat::VNote11] {
            assert!(
                Item::from_wire(&data, f).is_err(),
                "{} parsed as {f:?}",
                path.display()
            );
        }
        n += 1;
    }
    assert!(n >= 8);
    assert!(Item::from_wire(b"caf\xe9", WireFormat::PlainText).is_err());
    assert!(Item::from_wire(b"a\0b", WireFormat::PlainText).is_err());
}

#[test]
fn weekly_series_model() {
    let item = read("weekly-series.ics", WireFormat::ICal20);
    assert_eq!(item.kind, CalendarKind::Event);
    assert_eq!(item.uid(), Some("seed-event-00000@eds-session.test"));
    let m = item.master.as_ref().unwrap();
    assert_eq!(m.rrules, vec!["FREQ=WEEKLY;COUNT=10;BYDAY=MO"]);
    assert_eq!(m.location.as_deref(), Some("Büro 3.14"));
    assert_eq!(
        m.description.as_deref(),
        Some("Daily sync; bring notes,\nand coffee")
    );
    assert_eq!(
        m.start,
        Some(CalTime::Zoned {
            tzid: "Europe/Berlin".into(),
            time: LocalTime::parse("20240108T093000").unwrap()
        })
    );
    assert_eq!(m.exdates.len(), 1);
    assert_eq!(item.instances.len(), 1);
    assert_eq!(
        item.instances[0]
            .recurrence_id
            .as_ref()
            .unwrap()
            .value_text(),
        "20240129T093000"
    );
    // Only the referenced zone is kept; EDS-internal data is gone, user X- data stays.
    assert_eq!(item.tzids(), vec!["Europe/Berlin"]);
    assert_eq!(item.timezones.len(), 1);
    let ics = text(&item, WireFormat::ICal20);
    assert!(!ics.contains("X-EVOLUTION"), "{ics}");
    assert!(ics.contains("X-CUSTOM-FLAG;X-PARAM=1:keep me\r\n"), "{ics}");
    assert!(
        ics.contains("RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO\r\n"),
        "{ics}"
    );
    // Master before the instance, zone before both.
    let (tz, master, inst) = (
        ics.find("BEGIN:VTIMEZONE").unwrap(),
        ics.find("(recurring)").unwrap(),
        ics.find("(moved").unwrap(),
    );
    assert!(tz < master && master < inst);

    let vcs = text(&item, WireFormat::VCal10);
    assert!(vcs.contains("DTSTART:20240108T083000Z\r\n"), "{vcs}");
    assert!(vcs.contains("RRULE:W1 MO #10\r\n"), "{vcs}");
    assert!(vcs.contains("EXDATE:20240122T083000Z\r\n"), "{vcs}");
    // The moved occurrence: excluded from the master, sent as its own VEVENT.
    assert!(vcs.contains("EXDATE:20240129T083000Z\r\n"), "{vcs}");
    assert!(vcs.contains("RECURRENCE-ID:20240129T083000Z\r\n"), "{vcs}");
    assert!(
        vcs.contains("LOCATION;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:B=C3=BCro 3.14\r\n"),
        "{vcs}"
    );
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    let bm = back.master.as_ref().unwrap();
    assert_eq!(bm.rrules, m.rrules);
    assert_eq!(
        bm.exdates.len(),
        1,
        "the moved occurrence's EXDATE is dropped again"
    );
    assert_eq!(bm.description, m.description);
    assert_eq!(back.instances.len(), 1);
    assert_eq!(back.instances[0].summary, item.instances[0].summary);
}

#[test]
fn series_split_into_items_and_identity() {
    let item = read("weekly-series.ics", WireFormat::ICal20);
    let uid = item.uid().unwrap().to_string();
    assert_eq!(item.identity().as_deref(), Some(uid.as_str()));
    let parts = item.clone().split();
    assert_eq!(
        parts.len(),
        2,
        "master and moved occurrence are items of their own"
    );
    let (master, moved) = (&parts[0], &parts[1]);
    assert_eq!(master.master, item.master);
    assert!(master.instances.is_empty());
    assert_eq!(master.identity().as_deref(), Some(uid.as_str()));
    assert!(moved.master.is_none());
    assert_eq!(moved.instances, item.instances);
    for p in &parts {
        assert_eq!(p.tzids(), vec!["Europe/Berlin"]);
        assert_eq!(
            p.timezones, item.timezones,
            "each carries the zone it refers to"
        );
    }
    // The instance's identity: the recurrence id as a UTC instant (09:30 in Berlin).
    let id = moved.identity().unwrap();
    assert_eq!(id, format!("{uid}\u{1f}20240129T083000Z"));
    assert_eq!(
        split_instance_id(&id),
        (uid.as_str(), Some("20240129T083000Z"))
    );
    assert_eq!(split_instance_id(&uid), (uid.as_str(), None));
    assert_eq!(instance_id(&uid, None), uid);
    assert_eq!(
        instance_id(&uid, Some("20240129T093000")),
        format!("{uid}{INSTANCE_ID_SEPARATOR}20240129T093000")
    );
    assert_eq!(Item::Calendar(moved.clone()).identity(), Some(id.clone()));

    // One VEVENT per item on the wire; the identity survives both formats.
    let ics = text(moved, WireFormat::ICal20);
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 1, "{ics}");
    assert!(
        ics.contains("RECURRENCE-ID;TZID=Europe/Berlin:20240129T093000\r\n"),
        "{ics}"
    );
    assert!(ics.contains("BEGIN:VTIMEZONE"), "{ics}");
    let vcs = text(moved, WireFormat::VCal10);
    assert_eq!(vcs.matches("BEGIN:VEVENT").count(), 1, "{vcs}");
    assert!(vcs.contains("RECURRENCE-ID:20240129T083000Z\r\n"), "{vcs}");
    for (data, format) in [(ics, WireFormat::ICal20), (vcs, WireFormat::VCal10)] {
        let back = Item::from_wire(data.as_bytes(), format).unwrap();
        assert_eq!(back.identity(), Some(id.clone()), "{format:?}");
        assert_eq!(back.uid(), Some(uid.as_str()));
    }
    // The master alone in 1.0: only its own EXDATE (the moved occurrence is not in it).
    let vcs = text(master, WireFormat::VCal10);
    assert_eq!(vcs.matches("EXDATE").count(), 1, "{vcs}");
    assert!(!vcs.contains("RECURRENCE-ID"), "{vcs}");
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    assert_eq!(back.master.as_ref().unwrap().exdates.len(), 1);

    // A zone the item does not carry, floating and date recurrence ids: as written.
    let mut bare = moved.clone();
    bare.timezones.clear();
    assert_eq!(
        bare.identity().unwrap(),
        format!("{uid}\u{1f}20240129T093000")
    );
    bare.instances[0].recurrence_id = Some(CalTime::Date(Date::parse("20240129").unwrap()));
    assert_eq!(bare.identity().unwrap(), format!("{uid}\u{1f}20240129"));
    // A single component is returned as it is.
    assert_eq!(master.clone().split(), vec![master.clone()]);
    // Other items: the UID.
    let card = Item::from_wire(
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-1\r\nFN:A\r\nN:A;;;;\r\nEND:VCARD\r\n",
        WireFormat::VCard30,
    )
    .unwrap();
    assert_eq!(card.identity().as_deref(), Some("c-1"));
}

#[test]
fn all_day_and_alarms() {
    let item = read("all-day.ics", WireFormat::ICal20);
    let vcs = text(&item, WireFormat::VCal10);
    // All-day as midnight to the last second of the last day, never date-only.
    assert!(
        vcs.contains("DTSTART:20240315T000000\r\nDTEND:20240315T235959\r\n"),
        "{vcs}"
    );
    assert!(vcs.contains("TRANSP:1\r\n"), "{vcs}");
    assert!(vcs.contains("CATEGORIES:Birthday;Family\r\n"), "{vcs}");
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    let (m, b) = (item.master.as_ref().unwrap(), back.master.as_ref().unwrap());
    assert_eq!((&b.start, &b.end), (&m.start, &m.end));
    assert_eq!(b.categories, m.categories);
    assert_eq!(b.extra, m.extra, "TRANSP");

    // Two days (iCalendar: 21st to the 23rd exclusive): the 22nd is the last day.
    let item = read("two-day.ics", WireFormat::ICal20);
    let vcs = text(&item, WireFormat::VCal10);
    assert!(
        vcs.contains("DTSTART:20240421T000000\r\nDTEND:20240422T235959\r\n"),
        "{vcs}"
    );
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    let (m, b) = (item.master.as_ref().unwrap(), back.master.as_ref().unwrap());
    assert_eq!((&b.start, &b.end), (&m.start, &m.end));
    assert_eq!(b.end, Some(CalTime::Date(Date::parse("20240423").unwrap())));
    // Other 1.0 all-day forms still read: date-only (inclusive end), end at 23:59.
    for (start, end) in [
        ("20240421", "20240422"),
        ("20240421T000000", "20240422T235900"),
    ] {
        let v = format!("BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nDTSTART:{start}\r\nDTEND:{end}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        let got = cal(&Item::from_wire(v.as_bytes(), WireFormat::VCal10).unwrap()).clone();
        let g = got.master.as_ref().unwrap();
        assert_eq!((&g.start, &g.end), (&m.start, &m.end), "{start} {end}");
    }
    // A duration of whole days, and an all-day start without an end.
    let mut by_duration = item.clone();
    let d = by_duration.master.as_mut().unwrap();
    (d.end, d.duration) = (None, Some(2 * 86_400));
    let vcs = text(&by_duration, WireFormat::VCal10);
    assert!(vcs.contains("DTEND:20240422T235959\r\n"), "{vcs}");
    let mut open_end = item.clone();
    open_end.master.as_mut().unwrap().end = None;
    let vcs = text(&open_end, WireFormat::VCal10);
    assert!(
        vcs.contains("DTSTART:20240421\r\n") && !vcs.contains("DTEND"),
        "{vcs}"
    );
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    assert_eq!(
        back.master.as_ref().unwrap().start,
        open_end.master.as_ref().unwrap().start
    );

    let item = read("alarm.ics", WireFormat::ICal20);
    let m = item.master.as_ref().unwrap();
    assert_eq!(m.alarms.len(), 2);
    assert_eq!(
        m.alarms[0].trigger,
        Some(Trigger::Relative {
            seconds: -900,
            related_end: false
        })
    );
    assert!(
        m.alarms[0].extra.is_empty(),
        "X-EVOLUTION-ALARM-UID is dropped"
    );
    let ics = text(&item, WireFormat::ICal20);
    assert!(
        ics.contains("TRIGGER:-PT15M\r\n") && !ics.contains("ALARM-UID"),
        "{ics}"
    );
    let vcs = text(&item, WireFormat::VCal10);
    assert!(
        vcs.contains("DALARM:20240110T134500Z;;;Dentist\r\n"),
        "{vcs}"
    );
    assert!(vcs.contains("AALARM:20240110T130000Z;;;\r\n"), "{vcs}");
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    let b = back.master.as_ref().unwrap();
    assert_eq!(b.alarms[0].trigger, m.alarms[0].trigger);
    assert_eq!(b.alarms[0].description.as_deref(), Some("Dentist"));
    assert_eq!(
        b.alarms[1].trigger,
        Some(Trigger::Relative {
            seconds: -3600,
            related_end: false
        })
    );
}

#[test]
fn tasks() {
    let item = read("task.ics", WireFormat::ICal20);
    assert_eq!(item.kind, CalendarKind::Task);
    let m = item.master.as_ref().unwrap();
    assert_eq!(m.status.as_deref(), Some("IN-PROCESS"));
    assert_eq!((m.priority, m.percent_complete), (Some(1), Some(40)));
    assert_eq!(m.due.as_ref().unwrap().tzid(), Some("Europe/Berlin"));
    assert_eq!(
        m.alarms[0].trigger,
        Some(Trigger::Relative {
            seconds: -86_400,
            related_end: true
        })
    );
    let vcs = text(&item, WireFormat::VCal10);
    assert!(vcs.contains("BEGIN:VTODO\r\n"), "{vcs}");
    assert!(vcs.contains("DUE:20240731T160000Z\r\n"), "{vcs}");
    assert!(
        vcs.contains("DALARM:20240730T160000Z;;;Steuer!\r\n"),
        "{vcs}"
    );
    assert!(vcs.contains("PRIORITY:1\r\n"), "{vcs}");

    let done = read("task-done.ics", WireFormat::ICal20);
    let vcs = text(&done, WireFormat::VCal10);
    assert!(
        vcs.contains("STATUS:COMPLETED\r\n") && vcs.contains("COMPLETED:20240109T171500Z\r\n"),
        "{vcs}"
    );
    let back = cal(&Item::from_wire(vcs.as_bytes(), WireFormat::VCal10).unwrap()).clone();
    let (a, b) = (done.master.as_ref().unwrap(), back.master.as_ref().unwrap());
    assert_eq!(
        (&b.due, &b.status, &b.completed, b.priority),
        (&a.due, &a.status, &a.completed, a.priority)
    );
    let needs = Item::from_wire(
        b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VTODO\r\nSTATUS:NEEDS ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
        WireFormat::VCal10,
    )
    .unwrap();
    assert_eq!(
        cal(&needs).master.as_ref().unwrap().status.as_deref(),
        Some("NEEDS-ACTION")
    );
}

#[test]
fn phone_vcalendar() {
    let item = read("phone.vcs", WireFormat::VCal10);
    let m = item.master.as_ref().unwrap();
    assert_eq!(m.summary.as_deref(), Some("Kaffee mit Zoë"));
    assert_eq!(
        m.description.as_deref(),
        Some("Zeile 1\nZeile 2; mit Semikolon")
    );
    // TZ:+01:00 moves floating times to UTC.
    assert_eq!(m.start.as_ref().unwrap().value_text(), "20240108T090000Z");
    assert_eq!(m.rrules, vec!["FREQ=WEEKLY;COUNT=5;BYDAY=MO,TH"]);
    assert_eq!(m.categories, vec!["MEETING", "PERSONAL"]);
    assert_eq!(m.status.as_deref(), Some("NEEDS-ACTION"));
    assert_eq!(
        m.alarms.len(),
        1,
        "AALARM + DALARM at the same time are one alarm"
    );
    assert_eq!(m.alarms[0].action.as_deref(), Some("DISPLAY"));
    assert_eq!(
        m.alarms[0].trigger,
        Some(Trigger::Relative {
            seconds: -900,
            related_end: false
        })
    );
    let ics = text(&item, WireFormat::ICal20);
    assert!(
        ics.contains("TRANSP:OPAQUE\r\n") && ics.contains("X-EPOCAGENDAENTRYTYPE:APPOINTMENT\r\n"),
        "{ics}"
    );

    let allday = read("phone-allday.vcs", WireFormat::VCal10);
    let m = allday.master.as_ref().unwrap();
    assert_eq!(
        m.start,
        Some(CalTime::Date(Date::parse("20240701").unwrap()))
    );
    assert_eq!(m.end, Some(CalTime::Date(Date::parse("20240715").unwrap())));
    assert_eq!(m.rrules, vec!["FREQ=YEARLY;BYMONTH=7"]);
    assert_eq!(m.created.as_ref().unwrap().value_text(), "20240101T120000Z");
}

#[test]
fn rrule_conversions() {
    use super::vcal10::{rrule_from_v1, rrule_to_v1};
    let id = |u: &str| u.to_string();
    for (v2, v1) in [
        ("FREQ=DAILY;COUNT=3", "D1 #3"),
        ("FREQ=DAILY;INTERVAL=2", "D2 #0"),
        (
            "FREQ=WEEKLY;UNTIL=20240311T083000Z;BYDAY=MO,WE",
            "W1 MO WE 20240311T083000Z",
        ),
        ("FREQ=MONTHLY;INTERVAL=2;COUNT=6;BYDAY=2TU", "MP2 2+ TU #6"),
        ("FREQ=MONTHLY;BYDAY=-1FR", "MP1 1- FR #0"),
        ("FREQ=MONTHLY;BYMONTHDAY=15,-1", "MD1 15 1- #0"),
        ("FREQ=YEARLY;BYMONTH=3", "YM1 3 #0"),
        ("FREQ=YEARLY;COUNT=5;BYYEARDAY=100", "YD1 100 #5"),
        ("FREQ=YEARLY", "YM1 #0"),
    ] {
        assert_eq!(rrule_to_v1(v2, id).as_deref(), Some(v1), "{v2}");
        assert_eq!(rrule_from_v1(v1, None).as_deref(), Some(v2), "{v1}");
    }
    for v2 in [
        "FREQ=HOURLY",
        "FREQ=MONTHLY;BYDAY=TU",
        "FREQ=MONTHLY;BYDAY=1MO,2TU",
        "FREQ=WEEKLY;BYSETPOS=1",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "garbage",
    ] {
        assert_eq!(rrule_to_v1(v2, id), None, "{v2}");
    }
    assert_eq!(
        rrule_from_v1("W1 MO", None).as_deref(),
        Some("FREQ=WEEKLY;COUNT=2;BYDAY=MO"),
        "versit default #2"
    );
    assert_eq!(
        rrule_from_v1("MP1 1+ 2- MO", None).as_deref(),
        Some("FREQ=MONTHLY;COUNT=2;BYDAY=1MO,-2MO")
    );
    assert_eq!(
        rrule_from_v1("W1 MO 20240301T100000", Some(3600)).as_deref(),
        Some("FREQ=WEEKLY;UNTIL=20240301T090000Z;BYDAY=MO")
    );
    for bad in ["", "X1 #2", "W0 #1", "W1 XX", "D1 0800 #2", "MP1 MO", "#3"] {
        assert_eq!(rrule_from_v1(bad, None), None, "{bad:?}");
    }
    // An unreadable 1.0 rule is kept, not lost.
    let odd = Item::from_wire(b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:o\r\nRRULE:D1 0800 1200 #5\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", WireFormat::VCal10).unwrap();
    assert!(cal(&odd)
        .master
        .as_ref()
        .unwrap()
        .extra
        .iter()
        .any(|p| p.name == "X-VCAL10-RRULE"));
}

#[test]
fn memos() {
    let item = read("memo.ics", WireFormat::ICal20);
    assert_eq!(item.kind, CalendarKind::Journal);
    assert_eq!(
        text(&item, WireFormat::PlainText),
        "Einkaufsliste\r\nMilch, Brot, Käse\r\nÄpfel\r\n会议记录"
    );
    let server = read("server-memo.txt", WireFormat::PlainText);
    let m = server.master.as_ref().unwrap();
    assert_eq!(m.summary.as_deref(), Some("Ideas for the talk"));
    assert_eq!(
        m.description.as_deref(),
        Some("- slide 1: intro\n- slide 2: demo")
    );
    let lf = read("lf-memo.txt", WireFormat::PlainText);
    assert_eq!(
        lf.master.as_ref().unwrap().description.as_deref(),
        Some("讨论了预算; 下周继续\nline 3")
    );
    // What the server returns (CRLF, trailing CRLFs) reads back as the same memo.
    let mut returned = text(&item, WireFormat::PlainText).into_bytes();
    returned.extend_from_slice(b"\r\n\r\n");
    let back = cal(&Item::from_wire(&returned, WireFormat::PlainText).unwrap()).clone();
    assert_eq!(
        back.master.as_ref().unwrap().summary,
        item.master.as_ref().unwrap().summary
    );
    assert_eq!(
        back.master.as_ref().unwrap().description,
        item.master.as_ref().unwrap().description
    );
    let only_summary =
        cal(&Item::from_wire(b"\xEF\xBB\xBFJust a title\r\n", WireFormat::PlainText).unwrap())
            .clone();
    assert_eq!(
        only_summary.master.as_ref().unwrap().summary.as_deref(),
        Some("Just a title")
    );
    assert_eq!(only_summary.master.as_ref().unwrap().description, None);

    let vnt = text(&item, WireFormat::VNote11);
    assert!(
        vnt.starts_with("BEGIN:VNOTE\r\nVERSION:1.1\r\nSUBJECT:Einkaufsliste\r\n"),
        "{vnt}"
    );
    assert!(
        vnt.contains("BODY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Milch, Brot, K=C3=A4se=0D=0A"),
        "{vnt}"
    );
    assert!(
        vnt.contains("DCREATED:20261124T221840Z\r\n") && !vnt.contains("X-IRMC-LUID"),
        "{vnt}"
    );
    let note = read("note.vnt", WireFormat::VNote11);
    let n = note.master.as_ref().unwrap();
    assert_eq!(n.summary.as_deref(), Some("Packliste Urlaub ✈"));
    assert_eq!(
        n.description.as_deref(),
        Some("Sonnencreme\nLadekabel\nPässe")
    );
    assert_eq!(n.categories, vec!["Personal", "Reise"]);
    assert!(n.extra.is_empty(), "X-IRMC-LUID dropped: {:?}", n.extra);
    let body_only = cal(&Item::from_wire(
        b"BEGIN:VNOTE\r\nVERSION:1.1\r\nBODY:First\\nSecond\r\nEND:VNOTE\r\n",
        WireFormat::VNote11,
    )
    .unwrap())
    .clone();
    assert_eq!(
        body_only.master.as_ref().unwrap().summary.as_deref(),
        Some("First")
    );
}

#[test]
fn formats_and_mime() {
    use crate::class::DataClass;
    assert_eq!(
        formats_for(DataClass::Contacts),
        &[WireFormat::VCard30, WireFormat::VCard21]
    );
    assert_eq!(
        formats_for(DataClass::Calendar),
        &[WireFormat::ICal20, WireFormat::VCal10]
    );
    assert_eq!(
        formats_for(DataClass::Tasks),
        &[WireFormat::ICal20, WireFormat::VCal10]
    );
    assert_eq!(
        formats_for(DataClass::Notes),
        &[WireFormat::PlainText, WireFormat::VNote11]
    );
    for (f, mime, version) in [
        (WireFormat::ICal20, "text/calendar", "2.0"),
        (WireFormat::VCal10, "text/x-vcalendar", "1.0"),
        (WireFormat::PlainText, "text/plain", "1.0"),
        (WireFormat::VNote11, "text/x-vnote", "1.1"),
    ] {
        assert_eq!((f.mime(), f.version()), (mime, version));
    }
    // A vCalendar 1.0 announced as iCalendar 2.0 still parses as 1.0.
    let data = std::fs::read(testdata().join("phone.vcs")).unwrap();
    let as20 = Item::from_wire(&data, WireFormat::ICal20).unwrap();
    assert_eq!(
        cal(&as20).master.as_ref().unwrap().rrules,
        vec!["FREQ=WEEKLY;COUNT=5;BYDAY=MO,TH"]
    );
}

#[test]
fn deterministic_output() {
    let item = read("weekly-series.ics", WireFormat::ICal20);
    // The same item from components in another order gives the same bytes.
    let mut comps: Vec<Component> = item.timezones.clone();
    comps.extend(item.instances.iter().map(|c| c.to_component(item.kind)));
    comps.push(item.master.as_ref().unwrap().to_component(item.kind));
    comps.reverse();
    let other = CalendarItem::from_components(comps).unwrap();
    assert_eq!(other, item);
    for f in [WireFormat::ICal20, WireFormat::VCal10] {
        assert_eq!(text(&other, f), text(&item, f));
    }
}

#[test]
fn fuzz_no_panic() {
    let seeds: Vec<(Vec<u8>, WireFormat)> = [
        ("weekly-series.ics", WireFormat::ICal20),
        ("task.ics", WireFormat::ICal20),
        ("phone.vcs", WireFormat::VCal10),
        ("note.vnt", WireFormat::VNote11),
    ]
    .iter()
    .map(|(n, f)| (std::fs::read(testdata().join(n)).unwrap(), *f))
    .collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let specials = b";:,\"=\\\r\n \tTZ-#+0123456789\xc3\xff";
    for (seed, format) in &seeds {
        for _ in 0..300 {
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
            for f in [
                *format,
                WireFormat::ICal20,
                WireFormat::VCal10,
                WireFormat::PlainText,
                WireFormat::VNote11,
            ] {
                if let Ok(item) = Item::from_wire(&d, f) {
                    for out_f in [
                        WireFormat::ICal20,
                        WireFormat::VCal10,
                        WireFormat::PlainText,
                        WireFormat::VNote11,
                    ] {
                        let out = item.to_wire(out_f);
                        let _ = Item::from_wire(&out, out_f);
                    }
                }
            }
        }
    }
}
