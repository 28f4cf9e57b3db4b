//! Mapping between the element tree and the SyncML message model
//! ([`crate::types`]). Shared by all encodings.
//!
//! Decode rules: element names are matched by local name (namespaces are not
//! checked), unknown elements are ignored, unknown SyncBody commands become
//! [`Command::Other`]. Encode follows the element order of the SyncML 1.2 DTD.

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
        return Err(DecodeError::WrongRoot { found: root.name.clone(), expected: "SyncML" });
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
    DecodeError::MissingElement { parent: parent.name.clone(), element, position: parent.pos }
}

fn cmd_id(el: &Element) -> String {
    el.child_string("CmdID").unwrap_or_default()
}

pub fn command_from(el: &Element) -> Result<Command, DecodeError> {
    Ok(match el.name.as_str() {
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
                match c.name.as_str() {
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

pub fn message_to_element(msg: &Message) -> Element {
    let mut root = Element::new("SyncML").with_ns(syncml_ns(&msg.hdr.ver_dtd));
    root.push(hdr_to_element(&msg.hdr));
    let mut body = Element::new("SyncBody");
    for c in &msg.body {
        body.push(command_to_element(c));
    }
    body.push_flag("Final", msg.final_);
    root.push(body);
    root
}

fn hdr_to_element(h: &SyncHdr) -> Element {
    let mut e = Element::new("SyncHdr");
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

fn location_to_element(name: &str, l: &Location) -> Element {
    let mut e = Element::new(name);
    e.push_leaf("LocURI", l.loc_uri.as_str());
    e.push_opt_leaf("LocName", l.loc_name.as_deref());
    e
}

fn push_location(e: &mut Element, name: &str, l: Option<&Location>) {
    if let Some(l) = l {
        e.push(location_to_element(name, l));
    }
}

fn cred_to_element(c: &Cred) -> Element {
    let mut e = Element::new("Cred");
    e.push(meta_to_element(&c.meta));
    e.push_leaf("Data", c.data.as_str());
    e
}

fn anchor_to_element(a: &Anchor) -> Element {
    let mut e = Element::new("Anchor").with_ns(NS_METINF);
    e.push_opt_leaf("Last", a.last.as_deref());
    e.push_opt_leaf("Next", a.next.as_deref());
    e
}

pub fn meta_to_element(m: &Meta) -> Element {
    let mut e = Element::new("Meta");
    let mut leaf = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            e.push(Element::leaf(name, v).with_ns(NS_METINF));
        }
    };
    leaf("Format", m.format.clone());
    leaf("Type", m.type_.clone());
    leaf("Mark", m.mark.clone());
    leaf("Size", m.size.map(|v| v.to_string()));
    if let Some(a) = &m.anchor {
        e.push(anchor_to_element(a));
    }
    let mut leaf = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            e.push(Element::leaf(name, v).with_ns(NS_METINF));
        }
    };
    leaf("Version", m.version.clone());
    leaf("NextNonce", m.next_nonce.clone());
    leaf("MaxMsgSize", m.max_msg_size.map(|v| v.to_string()));
    leaf("MaxObjSize", m.max_obj_size.map(|v| v.to_string()));
    e
}

fn push_meta(e: &mut Element, m: Option<&Meta>) {
    if let Some(m) = m {
        e.push(meta_to_element(m));
    }
}

fn push_cred(e: &mut Element, c: Option<&Cred>) {
    if let Some(c) = c {
        e.push(cred_to_element(c));
    }
}

pub fn item_to_element(i: &Item) -> Element {
    let mut e = Element::new("Item");
    push_location(&mut e, "Target", i.target.as_ref());
    push_location(&mut e, "Source", i.source.as_ref());
    push_meta(&mut e, i.meta.as_ref());
    match &i.data {
        None => {}
        Some(ItemData::Bytes(b)) => e.push_opaque("Data", b.clone()),
        Some(ItemData::DevInf(d)) => {
            let mut data = Element::new("Data");
            data.push(devinf_map::devinf_to_element(d));
            e.push(data);
        }
        Some(ItemData::Anchor(a)) => {
            let mut data = Element::new("Data");
            data.push(anchor_to_element(a));
            e.push(data);
        }
    }
    e.push_flag("MoreData", i.more_data);
    e
}

fn push_items(e: &mut Element, items: &[Item]) {
    for i in items {
        e.push(item_to_element(i));
    }
}

fn item_cmd_to_element(name: &str, c: &ItemCmd) -> Element {
    let mut e = Element::new(name);
    e.push_leaf("CmdID", c.cmd_id.as_str());
    e.push_flag("NoResp", c.no_resp);
    push_cred(&mut e, c.cred.as_ref());
    push_meta(&mut e, c.meta.as_ref());
    push_items(&mut e, &c.items);
    e
}

fn put_get_to_element(name: &str, c: &PutGet) -> Element {
    let mut e = Element::new(name);
    e.push_leaf("CmdID", c.cmd_id.as_str());
    e.push_flag("NoResp", c.no_resp);
    e.push_opt_leaf("Lang", c.lang.as_deref());
    push_cred(&mut e, c.cred.as_ref());
    push_meta(&mut e, c.meta.as_ref());
    push_items(&mut e, &c.items);
    e
}

pub fn command_to_element(cmd: &Command) -> Element {
    match cmd {
        Command::Alert(a) => {
            let mut e = Element::new("Alert");
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
            let mut e = Element::new("Status");
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
            let mut e = Element::new("Sync");
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
            let mut e = Element::new("Results");
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
            let mut e = Element::new("Map");
            e.push_leaf("CmdID", m.cmd_id.as_str());
            e.push(location_to_element("Target", &m.target));
            e.push(location_to_element("Source", &m.source));
            push_cred(&mut e, m.cred.as_ref());
            push_meta(&mut e, m.meta.as_ref());
            for mi in &m.items {
                let mut me = Element::new("MapItem");
                me.push(location_to_element("Target", &mi.target));
                me.push(location_to_element("Source", &mi.source));
                e.push(me);
            }
            e
        }
        Command::Other(o) => {
            let mut e = Element::new(&o.name);
            e.push_leaf("CmdID", o.cmd_id.as_str());
            e.push_flag("NoResp", o.no_resp);
            e
        }
    }
}
