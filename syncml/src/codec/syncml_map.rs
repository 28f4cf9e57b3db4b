//! Mapping between the element tree and the SyncML message model
//! ([`crate::types`]). Shared by all encodings.
//!
//! Decode rules: element names are matched by local name (namespaces are not
//! checked), unknown elements are ignored, unknown SyncBody commands become
//! [`Command::Other`]. Encode follows the element order of the SyncML 1.2 DTD.

use std::borrow::Cow;

use super::devinf_map;
use super::element::Element;
use super::DecodeError;
use crate::types::*;

pub const NS_SYNCML: &str = "SYNCML:SYNCML1.2";
pub const NS_SYNCML_1_1: &str = "SYNCML:SYNCML1.1";

/// The SyncML namespace for a VerDTD ("1.1" or "1.2").
pub fn syncml_ns(ver_dtd: &str) -> &'static str {
    if ver_dtd.trim() == "1.1" {
        NS_SYNCML_1_1
    } else {
        NS_SYNCML
    }
}
pub const NS_METINF: &str = "syncml:metinf";

// ---------------------------------------------------------------- decode

pub fn message_from_element(root: &Element) -> Result<Message, DecodeError> {
    if root.name != "SyncML" {
        return Err(DecodeError::WrongRoot { found: root.name.to_string(), expected: "SyncML" });
    }
    let hdr_el = root.child("SyncHdr").ok_or_else(|| missing(root, "SyncHdr"))?;
    let body_el = root.child("SyncBody").ok_or_else(|| missing(root, "SyncBody"))?;
    let hdr = SyncHdr {
        ver_dtd: hdr_el.child_string("VerDTD").unwrap_or_default(),
        ver_proto: hdr_el.child_string("VerProto").unwrap_or_default(),
        session_id: hdr_el.child_string("SessionID").unwrap_or_default(),
        msg_id: hdr_el.required_text("MsgID")?,
        target: opt_location(hdr_el, "Target").unwrap_or_default(),
        source: opt_location(hdr_el, "Source").unwrap_or_default(),
        resp_uri: hdr_el.child_string("RespURI").filter(|s| !s.is_empty()),
        no_resp: hdr_el.has("NoResp"),
        cred: hdr_el.child("Cred").map(cred_from).transpose()?,
        meta: hdr_el.child("Meta").map(meta_from).transpose()?,
    };
    let mut body = Vec::new();
    let mut final_ = false;
    for c in &body_el.children {
        if c.name == "Final" {
            final_ = true;
        } else {
            body.push(command_from(c)?);
        }
    }
    Ok(Message { hdr, body, final_ })
}

fn missing(parent: &Element, element: &'static str) -> DecodeError {
    DecodeError::MissingElement { parent: parent.name.to_string(), element, position: parent.pos }
}

fn cmd_id(el: &Element) -> String {
    el.child_string("CmdID").unwrap_or_default()
}

pub fn command_from(el: &Element) -> Result<Command, DecodeError> {
    Ok(match el.name.as_ref() {
        "Alert" => Command::Alert(Alert {
            cmd_id: cmd_id(el),
            no_resp: el.has("NoResp"),
            cred: el.child("Cred").map(cred_from).transpose()?,
            data: el.child_number("Data")?,
            items: items_from(el)?,
        }),
        "Status" => Command::Status(Status {
            cmd_id: cmd_id(el),
            msg_ref: el.child_string("MsgRef").unwrap_or_default(),
            cmd_ref: el.required_text("CmdRef")?,
            cmd: el.child_string("Cmd").unwrap_or_default(),
            target_refs: el.children_named("TargetRef").map(|c| c.text.trim().to_string()).collect(),
            source_refs: el.children_named("SourceRef").map(|c| c.text.trim().to_string()).collect(),
            cred: el.child("Cred").map(cred_from).transpose()?,
            chal: el.child("Chal").map(chal_from).transpose()?,
            data: el.child("Data").ok_or_else(|| missing(el, "Data"))?.number()?,
            items: items_from(el)?,
        }),
        "Sync" => {
            let mut commands = Vec::new();
            for c in &el.children {
                match c.name.as_ref() {
                    "CmdID" | "NoResp" | "Cred" | "Target" | "Source" | "Meta" | "NumberOfChanges" => {}
                    _ => commands.push(command_from(c)?),
                }
            }
            Command::Sync(Sync {
                cmd_id: cmd_id(el),
                no_resp: el.has("NoResp"),
                cred: el.child("Cred").map(cred_from).transpose()?,
                target: opt_location(el, "Target"),
                source: opt_location(el, "Source"),
                meta: el.child("Meta").map(meta_from).transpose()?,
                number_of_changes: el.child_number("NumberOfChanges")?,
                commands,
            })
        }
        "Add" => Command::Add(item_cmd_from(el)?),
        "Replace" => Command::Replace(item_cmd_from(el)?),
        "Delete" => Command::Delete(item_cmd_from(el)?),
        "Copy" => Command::Copy(item_cmd_from(el)?),
        "Put" => Command::Put(put_get_from(el)?),
        "Get" => Command::Get(put_get_from(el)?),
        "Results" => Command::Results(Results {
            cmd_id: cmd_id(el),
            msg_ref: el.child_string("MsgRef"),
            cmd_ref: el.child_string("CmdRef").unwrap_or_default(),
            meta: el.child("Meta").map(meta_from).transpose()?,
            target_refs: el.children_named("TargetRef").map(|c| c.text.trim().to_string()).collect(),
            source_refs: el.children_named("SourceRef").map(|c| c.text.trim().to_string()).collect(),
            items: items_from(el)?,
        }),
        "Map" => Command::Map(Map {
            cmd_id: cmd_id(el),
            target: opt_location(el, "Target").unwrap_or_default(),
            source: opt_location(el, "Source").unwrap_or_default(),
            cred: el.child("Cred").map(cred_from).transpose()?,
            meta: el.child("Meta").map(meta_from).transpose()?,
            items: el
                .children_named("MapItem")
                .map(|mi| MapItem {
                    target: opt_location(mi, "Target").unwrap_or_default(),
                    source: opt_location(mi, "Source").unwrap_or_default(),
                })
                .collect(),
        }),
        other => Command::Other(OtherCmd {
            name: other.to_string(),
            cmd_id: cmd_id(el),
            no_resp: el.has("NoResp"),
        }),
    })
}

fn item_cmd_from(el: &Element) -> Result<ItemCmd, DecodeError> {
    Ok(ItemCmd {
        cmd_id: cmd_id(el),
        no_resp: el.has("NoResp"),
        cred: el.child("Cred").map(cred_from).transpose()?,
        meta: el.child("Meta").map(meta_from).transpose()?,
        items: items_from(el)?,
    })
}

fn put_get_from(el: &Element) -> Result<PutGet, DecodeError> {
    Ok(PutGet {
        cmd_id: cmd_id(el),
        no_resp: el.has("NoResp"),
        lang: el.child_string("Lang"),
        cred: el.child("Cred").map(cred_from).transpose()?,
        meta: el.child("Meta").map(meta_from).transpose()?,
        items: items_from(el)?,
    })
}

fn opt_location(el: &Element, name: &str) -> Option<Location> {
    el.child(name).map(|l| Location {
        loc_uri: l.child_string("LocURI").unwrap_or_default(),
        loc_name: l.child_string("LocName"),
    })
}

fn cred_from(el: &Element) -> Result<Cred, DecodeError> {
    Ok(Cred {
        meta: el.child("Meta").map(meta_from).transpose()?.unwrap_or_default(),
        data: el.child_string("Data").unwrap_or_default(),
    })
}

fn chal_from(el: &Element) -> Result<Chal, DecodeError> {
    Ok(Chal { meta: el.child("Meta").map(meta_from).transpose()?.unwrap_or_default() })
}

fn anchor_from(el: &Element) -> Anchor {
    Anchor { last: el.child_string("Last"), next: el.child_string("Next") }
}

pub fn meta_from(el: &Element) -> Result<Meta, DecodeError> {
    // SyncML 1.0 style <Meta><MetInf>...</MetInf></Meta> is accepted too.
    let el = el.child("MetInf").unwrap_or(el);
    Ok(Meta {
        format: el.child_string("Format"),
        type_: el.child_string("Type"),
        mark: el.child_string("Mark"),
        size: el.child_number("Size")?,
        anchor: el.child("Anchor").map(anchor_from),
        version: el.child_string("Version"),
        next_nonce: el.child_string("NextNonce"),
        max_msg_size: el.child_number("MaxMsgSize")?,
        max_obj_size: el.child_number("MaxObjSize")?,
    })
}

fn items_from(el: &Element) -> Result<Vec<Item>, DecodeError> {
    el.children_named("Item").map(item_from).collect()
}

fn item_from(el: &Element) -> Result<Item, DecodeError> {
    let data = match el.child("Data") {
        None => None,
        Some(d) => Some(if let Some(di) = d.child("DevInf") {
            ItemData::DevInf(Box::new(devinf_map::devinf_from(di)?))
        } else if let Some(a) = d.child("Anchor") {
            ItemData::Anchor(anchor_from(a))
        } else {
            ItemData::Bytes(d.content_bytes())
        }),
    };
    Ok(Item {
        target: opt_location(el, "Target"),
        source: opt_location(el, "Source"),
        meta: el.child("Meta").map(meta_from).transpose()?,
        data,
        more_data: el.has("MoreData"),
    })
}

// ---------------------------------------------------------------- encode

pub fn message_to_element(msg: &Message) -> Element<'_> {
    let mut root = Element::with_capacity("SyncML", 2).with_ns(syncml_ns(&msg.hdr.ver_dtd));
    root.push(hdr_to_element(&msg.hdr));
    let mut body = Element::with_capacity("SyncBody", msg.body.len() + usize::from(msg.final_));
    for c in &msg.body {
        body.push(command_to_element(c));
    }
    body.push_flag("Final", msg.final_);
    root.push(body);
    root
}

fn hdr_to_element(h: &SyncHdr) -> Element<'_> {
    let mut e = Element::with_capacity("SyncHdr", 10);
    e.push_leaf("VerDTD", h.ver_dtd.as_str());
    e.push_leaf("VerProto", h.ver_proto.as_str());
    e.push_leaf("SessionID", h.session_id.as_str());
    e.push_leaf("MsgID", h.msg_id.as_str());
    e.push(location_to_element("Target", &h.target));
    e.push(location_to_element("Source", &h.source));
    e.push_opt_leaf("RespURI", h.resp_uri.as_deref());
    e.push_flag("NoResp", h.no_resp);
    if let Some(c) = &h.cred {
        e.push(cred_to_element(c));
    }
    push_meta(&mut e, h.meta.as_ref());
    e
}

fn location_to_element<'a>(name: &'static str, l: &'a Location) -> Element<'a> {
    let mut e = Element::with_capacity(name, 1 + usize::from(l.loc_name.is_some()));
    e.push_leaf("LocURI", l.loc_uri.as_str());
    e.push_opt_leaf("LocName", l.loc_name.as_deref());
    e
}

fn push_location<'a>(e: &mut Element<'a>, name: &'static str, l: Option<&'a Location>) {
    if let Some(l) = l {
        e.push(location_to_element(name, l));
    }
}

fn cred_to_element(c: &Cred) -> Element<'_> {
    let mut e = Element::with_capacity("Cred", 2);
    e.push(meta_to_element(&c.meta));
    e.push_leaf("Data", c.data.as_str());
    e
}

fn anchor_to_element(a: &Anchor) -> Element<'_> {
    let mut e = Element::with_capacity("Anchor", 2).with_ns(NS_METINF);
    e.push_opt_leaf("Last", a.last.as_deref());
    e.push_opt_leaf("Next", a.next.as_deref());
    e
}

pub fn meta_to_element(m: &Meta) -> Element<'_> {
    let present = [
        m.format.is_some(),
        m.type_.is_some(),
        m.mark.is_some(),
        m.size.is_some(),
        m.anchor.is_some(),
        m.version.is_some(),
        m.next_nonce.is_some(),
        m.max_msg_size.is_some(),
        m.max_obj_size.is_some(),
    ];
    let mut e = Element::with_capacity("Meta", present.into_iter().filter(|b| *b).count());
    fn leaf<'a>(e: &mut Element<'a>, name: &'static str, v: Option<Cow<'a, str>>) {
        if let Some(v) = v {
            e.push(Element::leaf(name, v).with_ns(NS_METINF));
        }
    }
    fn s(v: &Option<String>) -> Option<Cow<'_, str>> {
        v.as_deref().map(Cow::Borrowed)
    }
    let num = |v: Option<u64>| v.map(|v| Cow::Owned(v.to_string()));
    leaf(&mut e, "Format", s(&m.format));
    leaf(&mut e, "Type", s(&m.type_));
    leaf(&mut e, "Mark", s(&m.mark));
    leaf(&mut e, "Size", num(m.size));
    if let Some(a) = &m.anchor {
        e.push(anchor_to_element(a));
    }
    leaf(&mut e, "Version", s(&m.version));
    leaf(&mut e, "NextNonce", s(&m.next_nonce));
    leaf(&mut e, "MaxMsgSize", num(m.max_msg_size));
    leaf(&mut e, "MaxObjSize", num(m.max_obj_size));
    e
}

fn push_meta<'a>(e: &mut Element<'a>, m: Option<&'a Meta>) {
    if let Some(m) = m {
        e.push(meta_to_element(m));
    }
}

fn push_cred<'a>(e: &mut Element<'a>, c: Option<&'a Cred>) {
    if let Some(c) = c {
        e.push(cred_to_element(c));
    }
}

pub fn item_to_element(i: &Item) -> Element<'_> {
    let n = [i.target.is_some(), i.source.is_some(), i.meta.is_some(), i.data.is_some(), i.more_data];
    let mut e = Element::with_capacity("Item", n.into_iter().filter(|b| *b).count());
    push_location(&mut e, "Target", i.target.as_ref());
    push_location(&mut e, "Source", i.source.as_ref());
    push_meta(&mut e, i.meta.as_ref());
    match &i.data {
        None => {}
        Some(ItemData::Bytes(b)) => e.push_opaque("Data", b.as_slice()),
        Some(ItemData::DevInf(d)) => {
            let mut data = Element::with_capacity("Data", 1);
            data.push(devinf_map::devinf_to_element(d));
            e.push(data);
        }
        Some(ItemData::Anchor(a)) => {
            let mut data = Element::with_capacity("Data", 1);
            data.push(anchor_to_element(a));
            e.push(data);
        }
    }
    e.push_flag("MoreData", i.more_data);
    e
}

fn push_items<'a>(e: &mut Element<'a>, items: &'a [Item]) {
    for i in items {
        e.push(item_to_element(i));
    }
}

fn item_cmd_to_element<'a>(name: &'static str, c: &'a ItemCmd) -> Element<'a> {
    let mut e = Element::with_capacity(name, 4 + c.items.len());
    e.push_leaf("CmdID", c.cmd_id.as_str());
    e.push_flag("NoResp", c.no_resp);
    push_cred(&mut e, c.cred.as_ref());
    push_meta(&mut e, c.meta.as_ref());
    push_items(&mut e, &c.items);
    e
}

fn put_get_to_element<'a>(name: &'static str, c: &'a PutGet) -> Element<'a> {
    let mut e = Element::with_capacity(name, 5 + c.items.len());
    e.push_leaf("CmdID", c.cmd_id.as_str());
    e.push_flag("NoResp", c.no_resp);
    e.push_opt_leaf("Lang", c.lang.as_deref());
    push_cred(&mut e, c.cred.as_ref());
    push_meta(&mut e, c.meta.as_ref());
    push_items(&mut e, &c.items);
    e
}

pub fn command_to_element(cmd: &Command) -> Element<'_> {
    match cmd {
        Command::Alert(a) => {
            let mut e = Element::with_capacity("Alert", 4 + a.items.len());
            e.push_leaf("CmdID", a.cmd_id.as_str());
            e.push_flag("NoResp", a.no_resp);
            push_cred(&mut e, a.cred.as_ref());
            if let Some(d) = a.data {
                e.push_leaf("Data", d.to_string());
            }
            push_items(&mut e, &a.items);
            e
        }
        Command::Status(s) => {
            let mut e = Element::with_capacity("Status", 7 + s.target_refs.len() + s.source_refs.len() + s.items.len());
            e.push_leaf("CmdID", s.cmd_id.as_str());
            e.push_leaf("MsgRef", s.msg_ref.as_str());
            e.push_leaf("CmdRef", s.cmd_ref.as_str());
            e.push_leaf("Cmd", s.cmd.as_str());
            for t in &s.target_refs {
                e.push_leaf("TargetRef", t.as_str());
            }
            for t in &s.source_refs {
                e.push_leaf("SourceRef", t.as_str());
            }
            push_cred(&mut e, s.cred.as_ref());
            if let Some(c) = &s.chal {
                let mut ce = Element::new("Chal");
                ce.push(meta_to_element(&c.meta));
                e.push(ce);
            }
            e.push_leaf("Data", s.data.to_string());
            push_items(&mut e, &s.items);
            e
        }
        Command::Sync(s) => {
            let mut e = Element::with_capacity("Sync", 7 + s.commands.len());
            e.push_leaf("CmdID", s.cmd_id.as_str());
            e.push_flag("NoResp", s.no_resp);
            push_cred(&mut e, s.cred.as_ref());
            push_location(&mut e, "Target", s.target.as_ref());
            push_location(&mut e, "Source", s.source.as_ref());
            push_meta(&mut e, s.meta.as_ref());
            if let Some(n) = s.number_of_changes {
                e.push_leaf("NumberOfChanges", n.to_string());
            }
            for c in &s.commands {
                e.push(command_to_element(c));
            }
            e
        }
        Command::Add(c) => item_cmd_to_element("Add", c),
        Command::Replace(c) => item_cmd_to_element("Replace", c),
        Command::Delete(c) => item_cmd_to_element("Delete", c),
        Command::Copy(c) => item_cmd_to_element("Copy", c),
        Command::Put(c) => put_get_to_element("Put", c),
        Command::Get(c) => put_get_to_element("Get", c),
        Command::Results(r) => {
            let mut e =
                Element::with_capacity("Results", 4 + r.target_refs.len() + r.source_refs.len() + r.items.len());
            e.push_leaf("CmdID", r.cmd_id.as_str());
            e.push_opt_leaf("MsgRef", r.msg_ref.as_deref());
            e.push_leaf("CmdRef", r.cmd_ref.as_str());
            push_meta(&mut e, r.meta.as_ref());
            for t in &r.target_refs {
                e.push_leaf("TargetRef", t.as_str());
            }
            for t in &r.source_refs {
                e.push_leaf("SourceRef", t.as_str());
            }
            push_items(&mut e, &r.items);
            e
        }
        Command::Map(m) => {
            let mut e = Element::with_capacity("Map", 5 + m.items.len());
            e.push_leaf("CmdID", m.cmd_id.as_str());
            e.push(location_to_element("Target", &m.target));
            e.push(location_to_element("Source", &m.source));
            push_cred(&mut e, m.cred.as_ref());
            push_meta(&mut e, m.meta.as_ref());
            for mi in &m.items {
                let mut me = Element::with_capacity("MapItem", 2);
                me.push(location_to_element("Target", &mi.target));
                me.push(location_to_element("Source", &mi.source));
                e.push(me);
            }
            e
        }
        Command::Other(o) => {
            let mut e = Element::new(o.name.clone());
            e.push_leaf("CmdID", o.cmd_id.as_str());
            e.push_flag("NoResp", o.no_resp);
            e
        }
    }
}
