//! SyncML XML encoding (`application/vnd.syncml+xml`) with quick-xml.
//!
//! Decoding is tolerant: namespaces (and their case) are not checked, except
//! that a root element declaring a namespace must declare a SyncML one
//! (`SYNCML:…`, any case: a document of another vocabulary is not a SyncML
//! message, whatever its element names), unknown
//! elements are skipped by the model mapping, comments/PIs/DOCTYPE are ignored.
//! It is also bounded: nesting deeper than [`super::MAX_DEPTH`] is rejected,
//! and no input makes it panic.
//!
//! Encoding is deterministic and compact (no indentation). Item `Data` is
//! written as CDATA when it contains `<` or `&` (a `]]>` inside is split
//! across two CDATA sections), otherwise as escaped text.

use std::borrow::Cow;

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

use super::element::{Element, TreeBuilder};
use super::{syncml_map, wbxml, DecodeError, MAX_DEPTH};
use crate::types::{Command, Item, Message};

/// HTTP Content-Type of SyncML XML messages.
pub const CONTENT_TYPE: &str = "application/vnd.syncml+xml";

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// Encode a message as a complete XML document.
pub fn encode(msg: &Message) -> Vec<u8> {
    let root = syncml_map::message_to_element(msg);
    let mut out = String::with_capacity(XML_DECL.len() + size_hint(&root));
    out.push_str(XML_DECL);
    write_element(&mut out, &root);
    out.into_bytes()
}

/// A DevInf as a standalone XML document (`<DevInf xmlns='syncml:devinf'>`), e.g. to keep
/// a server's DevInf between sessions.
pub fn encode_devinf(d: &crate::devinf::DevInf) -> Vec<u8> {
    let root = super::devinf_map::devinf_to_element(d);
    let mut out = String::with_capacity(XML_DECL.len() + size_hint(&root));
    out.push_str(XML_DECL);
    write_element(&mut out, &root);
    out.into_bytes()
}

/// Decode what [`encode_devinf`] wrote.
pub fn decode_devinf(input: &[u8]) -> Result<crate::devinf::DevInf, DecodeError> {
    super::devinf_map::devinf_from(&parse_tree(input)?)
}

/// An estimate of the encoded size of `el` (content plus tags).
fn size_hint(el: &Element) -> usize {
    5 + 2 * el.name.len()
        + el.ns.map_or(0, |n| n.len() + 9)
        + el.text.len()
        + el.opaque.as_ref().map_or(0, |o| o.len())
        + el.children.iter().map(size_hint).sum::<usize>()
}

/// Decode an XML document into a message.
pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
    let root = parse_tree(input)?;
    syncml_map::message_from_element(&root)
}

/// Number of bytes `cmd` occupies inside an encoded SyncBody. Because the
/// encoding is compact, a message's size is exactly the size of the message
/// without the command plus this.
pub fn encoded_command_len(cmd: &Command) -> usize {
    let mut n = Count(0);
    write_element(&mut n, &syncml_map::command_to_element(cmd));
    n.0
}

/// Number of bytes `item` occupies inside an encoded Add/Replace/Delete
/// (exact, like [`encoded_command_len`]).
pub fn encoded_item_len(item: &Item) -> usize {
    let mut n = Count(0);
    write_element(&mut n, &syncml_map::item_to_element(item));
    n.0
}

/// The root element's namespace (default, or that of its prefix), when it
/// declares one, must be a SyncML namespace (`SYNCML:SYNCML1.2`, `syncml:devinf`, ...).
fn check_root_namespace(s: &quick_xml::events::BytesStart<'_>, name: &str) -> Result<(), DecodeError> {
    let qname = s.name();
    let key: Vec<u8> = match qname.prefix() {
        Some(p) => [b"xmlns:".as_slice(), p.as_ref()].concat(),
        None => b"xmlns".to_vec(),
    };
    for a in s.attributes().with_checks(false).flatten() {
        if a.key.as_ref() == key.as_slice() {
            let v = String::from_utf8_lossy(&a.value).into_owned();
            if !v.trim().get(..7).is_some_and(|p| p.eq_ignore_ascii_case("syncml:")) {
                return Err(DecodeError::WrongNamespace { element: name.to_string(), namespace: v.chars().take(200).collect() });
            }
        }
    }
    Ok(())
}

/// Parse XML into an element tree (root element returned).
pub fn parse_tree(input: &[u8]) -> Result<Element<'_>, DecodeError> {
    let mut reader = Reader::from_reader(input);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.expand_empty_elements = false;
    }
    let mut tree = TreeBuilder::default();

    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| DecodeError::Syntax {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match ev {
            XmlEvent::Start(s) | XmlEvent::Empty(s) if tree.has_root() => {
                let _ = s;
                return Err(DecodeError::TrailingContent { position: pos });
            }
            XmlEvent::Start(s) => {
                let name = element_name(s.local_name().as_ref(), pos)?;
                if tree.depth() == 0 {
                    check_root_namespace(&s, &name)?;
                }
                if tree.depth() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { position: pos, element: name.into_owned(), max: MAX_DEPTH });
                }
                tree.open(Element { name, pos, ..Element::default() });
            }
            XmlEvent::Empty(s) => {
                let name = element_name(s.local_name().as_ref(), pos)?;
                if tree.depth() == 0 {
                    check_root_namespace(&s, &name)?;
                }
                if tree.depth() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { position: pos, element: name.into_owned(), max: MAX_DEPTH });
                }
                tree.add(Element { name, pos, ..Element::default() });
            }
            XmlEvent::End(_) => {
                // quick-xml has already checked that the name matches.
                if !tree.close() {
                    return Err(DecodeError::Syntax { position: pos, message: "unmatched end tag".into() });
                }
            }
            XmlEvent::Text(t) => {
                let has_root = tree.has_root();
                let Some(top) = tree.top() else {
                    // Only whitespace may appear outside the root element.
                    if t.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    return Err(if has_root {
                        DecodeError::TrailingContent { position: pos }
                    } else {
                        DecodeError::Syntax { position: pos, message: "text before the root element".into() }
                    });
                };
                let text = t.unescape().map_err(|e| match e {
                    quick_xml::Error::Encoding(_) => {
                        DecodeError::InvalidUtf8 { position: pos, element: top.name.to_string() }
                    }
                    other => DecodeError::Syntax { position: pos, message: other.to_string() },
                })?;
                append_text(top, text);
            }
            XmlEvent::CData(c) => {
                let Some(top) = tree.top() else {
                    return Err(DecodeError::Syntax { position: pos, message: "CDATA outside the root element".into() });
                };
                let invalid = |top: &Element| DecodeError::InvalidUtf8 { position: pos, element: top.name.to_string() };
                let s: Cow<'_, str> = match c.into_inner() {
                    Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| invalid(top))?),
                    Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| invalid(top))?),
                };
                append_text(top, s);
            }
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) | XmlEvent::DocType(_) => {}
            XmlEvent::Eof => {
                if let Some(open) = tree.top() {
                    return Err(DecodeError::Truncated { position: pos, open_element: open.name.to_string() });
                }
                return tree.finish().ok_or(DecodeError::Empty);
            }
        }
    }
}

/// Append decoded text to an element, keeping it borrowed when it is the
/// element's only text.
fn append_text<'a>(el: &mut Element<'a>, text: Cow<'a, str>) {
    if el.text.is_empty() {
        el.text = text;
    } else {
        el.text.to_mut().push_str(&text);
    }
}

/// A decoded element name: the static name when SyncML/MetInf/DevInf knows
/// it, else an owned copy.
fn element_name(raw: &[u8], pos: u64) -> Result<Cow<'static, str>, DecodeError> {
    match std::str::from_utf8(raw) {
        Ok(n) => Ok(wbxml::static_name(n).map_or_else(|| Cow::Owned(n.to_string()), Cow::Borrowed)),
        Err(_) => Err(DecodeError::InvalidUtf8 { position: pos, element: String::from_utf8_lossy(raw).into_owned() }),
    }
}

/// Where [`write_element`] writes: a `String`, or a byte counter (sizes).
pub trait XmlSink {
    fn push_str(&mut self, s: &str);
}

impl XmlSink for String {
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

/// Counts the bytes instead of writing them.
struct Count(usize);

impl XmlSink for Count {
    fn push_str(&mut self, s: &str) {
        self.0 += s.len();
    }
}

/// Write an element (and its subtree) compactly.
pub fn write_element(out: &mut impl XmlSink, el: &Element) {
    out.push_str("<");
    out.push_str(&el.name);
    if let Some(ns) = el.ns {
        out.push_str(" xmlns='");
        escape_into(out, ns, true);
        out.push_str("'");
    }
    let opaque = el.opaque.as_deref().map(String::from_utf8_lossy);
    let text: Cow<'_, str> = match opaque {
        None => Cow::Borrowed(&el.text),
        Some(o) if el.text.is_empty() => o,
        Some(o) => Cow::Owned(format!("{}{o}", el.text)),
    };
    if el.children.is_empty() && text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push_str(">");
    if !text.is_empty() {
        if el.name == "Data" && text.contains(['<', '&']) {
            write_cdata(out, &text);
        } else {
            escape_into(out, &text, false);
        }
    }
    for c in &el.children {
        write_element(out, c);
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push_str(">");
}

/// `<![CDATA[...]]>`, splitting any `]]>` in the text across two sections.
fn write_cdata(out: &mut impl XmlSink, text: &str) {
    out.push_str("<![CDATA[");
    for (i, part) in text.split("]]>").enumerate() {
        if i > 0 {
            out.push_str("]]]]><![CDATA[>");
        }
        out.push_str(part);
    }
    out.push_str("]]>");
}

/// Escaped `text`: runs without a special character are copied whole.
fn escape_into(out: &mut impl XmlSink, text: &str, attr: bool) {
    let mut done = 0;
    for (i, b) in text.bytes().enumerate() {
        let esc = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\'' if attr => "&apos;",
            b'"' if attr => "&quot;",
            _ => continue,
        };
        out.push_str(&text[done..i]);
        out.push_str(esc);
        done = i + 1;
    }
    out.push_str(&text[done..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_split_round_trip() {
        let mut el = Element::new("Data");
        el.text = "a]]>b<c>&d]]>".into();
        let mut out = String::new();
        write_element(&mut out, &el);
        assert_eq!(out, "<Data><![CDATA[a]]]]><![CDATA[>b<c>&d]]]]><![CDATA[>]]></Data>");
        let back = parse_tree(out.as_bytes()).unwrap();
        assert_eq!(back.text, el.text);
    }

    #[test]
    fn escaped_text_round_trip() {
        let mut el = Element::new("LocURI");
        el.text = "http://x/?a=1&b=<2>".into();
        let mut out = String::new();
        write_element(&mut out, &el);
        assert_eq!(out, "<LocURI>http://x/?a=1&amp;b=&lt;2&gt;</LocURI>");
        assert_eq!(parse_tree(out.as_bytes()).unwrap().text, el.text);
    }

    #[test]
    fn depth_limit() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse_tree(deep.as_bytes()), Err(DecodeError::TooDeep { .. })));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse_tree(ok.as_bytes()).is_ok());
    }

    #[test]
    fn truncated_and_trailing() {
        assert!(matches!(parse_tree(b"<a><b>x</b>"), Err(DecodeError::Truncated { .. })));
        assert!(matches!(parse_tree(b"<a/><b/>"), Err(DecodeError::TrailingContent { .. })));
        assert!(matches!(parse_tree(b""), Err(DecodeError::Empty)));
        assert!(matches!(parse_tree(b"   "), Err(DecodeError::Empty)));
        assert!(matches!(parse_tree(b"<a></b>"), Err(DecodeError::Syntax { .. })));
        assert!(parse_tree(b"<a>\xff</a>").is_err());
    }
}
