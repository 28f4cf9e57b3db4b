//! Property tests: arbitrary element trees and arbitrary messages round-trip
//! through the XML and the WBXML codec.

use proptest::prelude::*;

use syncml::codec::element::Element;
use syncml::codec::{wbxml, xml};
use syncml::types::*;

const NAMES: &[&str] = &[
    "SyncML", "SyncHdr", "SyncBody", "Status", "Data", "Item", "LocURI", "Meta", "Type", "Anchor", "Last", "Next",
    "MaxObjSize", "Final", "X-Unknown", "Other-Thing",
];

fn xml_text() -> impl Strategy<Value = String> {
    // Printable text, including markup characters, CDATA end and CRLF.
    proptest::string::string_regex("([a-zA-Z0-9 <>&'\"/:.=-]|\\]\\]>|\r\n|é|€){0,12}").unwrap()
}

fn tree(text: BoxedStrategy<String>, binary: bool) -> impl Strategy<Value = Element<'static>> {
    let leaf = (proptest::sample::select(NAMES), text.clone(), proptest::collection::vec(any::<u8>(), 0..40), any::<bool>())
        .prop_map(move |(name, text, bytes, opaque)| {
            let mut e = Element::new(name);
            if binary && opaque && name == "Data" {
                e.opaque = Some(bytes.into());
            } else {
                e.text = text.into();
            }
            e
        });
    leaf.prop_recursive(5, 40, 6, move |inner| {
        (proptest::sample::select(NAMES), text.clone(), proptest::collection::vec(inner, 0..6)).prop_map(|(name, text, children)| {
            let mut e = Element::new(name);
            e.text = text.into();
            e.children = children;
            e
        })
    })
}

fn strip_pos(mut e: Element) -> Element {
    e.pos = 0;
    e.children = e.children.into_iter().map(strip_pos).collect();
    e
}

// ---------------------------------------------------------------- messages

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./:?=_-]{1,16}"
}

fn data(binary: bool) -> BoxedStrategy<Vec<u8>> {
    if binary {
        proptest::collection::vec(any::<u8>(), 0..300).boxed()
    } else {
        xml_text().prop_map(String::into_bytes).boxed()
    }
}

fn item(binary: bool) -> impl Strategy<Value = Item> {
    (proptest::option::of(token()), proptest::option::of(token()), proptest::option::of(token()), proptest::option::of(data(binary)), any::<bool>(), proptest::option::of(0u64..10_000_000))
        .prop_map(|(t, s, ty, d, more, size)| Item {
            target: t.map(Location::new),
            source: s.map(Location::new),
            meta: if ty.is_none() && size.is_none() { None } else { Some(Meta { type_: ty, size, ..Meta::default() }) },
            data: d.map(ItemData::Bytes),
            more_data: more,
        })
}

fn command(binary: bool) -> impl Strategy<Value = Command> {
    let item_cmd = (token(), any::<bool>(), proptest::collection::vec(item(binary), 0..3), 0u8..3).prop_map(|(id, nr, items, k)| {
        let c = ItemCmd { cmd_id: id, no_resp: nr, items, ..ItemCmd::default() };
        match k {
            0 => Command::Add(c),
            1 => Command::Replace(c),
            _ => Command::Delete(c),
        }
    }).boxed();
    let status = (token(), token(), token(), "(Add|Sync|Alert|SyncHdr)", 100u16..600, proptest::collection::vec(token(), 0..2)).prop_map(
        |(id, mr, cr, cmd, code, refs)| Command::Status(Status { cmd_id: id, msg_ref: mr, cmd_ref: cr, cmd, data: code, source_refs: refs, ..Status::default() }),
    );
    let alert = (token(), 200u16..230, token(), token(), proptest::option::of(token())).prop_map(|(id, code, t, s, next)| {
        Command::Alert(Alert {
            cmd_id: id,
            data: Some(code),
            items: vec![Item {
                target: Some(Location::new(t)),
                source: Some(Location::new(s)),
                meta: next.map(|n| Meta { anchor: Some(Anchor { last: None, next: Some(n) }), ..Meta::default() }),
                ..Item::default()
            }],
            ..Alert::default()
        })
    });
    let sync = (token(), token(), proptest::collection::vec(item_cmd.clone(), 0..4), proptest::option::of(0u32..5000)).prop_map(|(id, t, cmds, n)| {
        Command::Sync(Sync { cmd_id: id, target: Some(Location::new(t)), number_of_changes: n, commands: cmds, ..Sync::default() })
    });
    let map = (token(), token(), token(), proptest::collection::vec((token(), token()), 0..4)).prop_map(|(id, t, s, items)| {
        Command::Map(Map {
            cmd_id: id,
            target: Location::new(t),
            source: Location::new(s),
            items: items.into_iter().map(|(a, b)| MapItem { target: Location::new(a), source: Location::new(b) }).collect(),
            ..Map::default()
        })
    });
    prop_oneof![item_cmd, status, alert, sync, map]
}

fn message(binary: bool) -> impl Strategy<Value = Message> {
    (token(), token(), token(), token(), proptest::option::of(token()), proptest::collection::vec(command(binary), 0..6), any::<bool>(), prop_oneof![Just("1.2"), Just("1.1")])
        .prop_map(|(sid, mid, t, s, resp, body, fin, ver)| Message {
            hdr: SyncHdr {
                ver_dtd: ver.into(),
                ver_proto: format!("SyncML/{ver}"),
                session_id: sid,
                msg_id: mid,
                target: Location::new(t),
                source: Location::new(s),
                resp_uri: resp,
                meta: Some(Meta { max_msg_size: Some(150000), max_obj_size: Some(4000000), ..Meta::default() }),
                ..SyncHdr::default()
            },
            body,
            final_: fin,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn trees_round_trip_through_wbxml(root in tree(any::<String>().boxed(), true)) {
        let bytes = wbxml::write_document(wbxml::PUBLIC_ID_SYNCML_12, &root);
        let back = strip_pos(wbxml::parse_tree(&bytes).unwrap());
        prop_assert_eq!(&back, &root);
        prop_assert_eq!(wbxml::write_document(wbxml::PUBLIC_ID_SYNCML_12, &back), bytes);
    }

    #[test]
    fn trees_round_trip_through_xml(root in tree(xml_text().boxed(), false)) {
        let mut out = String::new();
        xml::write_element(&mut out, &root);
        let back = strip_pos(xml::parse_tree(out.as_bytes()).unwrap());
        prop_assert_eq!(back, root);
    }

    #[test]
    fn messages_round_trip_through_wbxml(m in message(true)) {
        let bytes = wbxml::encode(&m);
        prop_assert_eq!(wbxml::decode(&bytes).unwrap(), m.clone());
        // Our size accounting is an upper bound for every command.
        let empty = wbxml::encode(&Message { body: vec![], final_: true, ..m.clone() }).len();
        let sum: usize = m.body.iter().map(wbxml::encoded_command_len).sum();
        prop_assert!(bytes.len() <= empty + sum);
    }

    #[test]
    fn messages_round_trip_through_xml(m in message(false)) {
        let bytes = xml::encode(&m);
        prop_assert_eq!(xml::decode(&bytes).unwrap(), m.clone());
        // Exact: a message is its empty shell (with Final) plus its commands.
        let empty = xml::encode(&Message { body: vec![], final_: true, ..m.clone() }).len();
        let sum: usize = m.body.iter().map(xml::encoded_command_len).sum();
        prop_assert!(bytes.len() <= empty + sum);
        if m.final_ { prop_assert_eq!(bytes.len(), empty + sum); }
    }

    #[test]
    fn wbxml_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut input = vec![0x02, 0xa4, 0x01, 0x6a, 0x00];
        input.extend_from_slice(&bytes);
        let _ = wbxml::decode(&input);
        let _ = wbxml::decode(&bytes);
    }
}
