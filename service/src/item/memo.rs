//! Memos (EDS memo lists, `VJOURNAL`) as plain text (`text/plain`) and vNote 1.1
//! (`text/x-vnote`). Both carry a [`CalendarItem`] of kind [`CalendarKind::Journal`].
//!
//! * Plain text: the first line is the summary, the lines after it the description.
//!   Written with CRLF line breaks and no trailing line break. Reading accepts LF, CRLF
//!   or CR, a UTF-8 byte-order mark, and ignores trailing blank lines and whitespace
//!   (the server appends CRLFs). Nothing else survives plain text.
//! * vNote 1.1: `SUBJECT` = summary, `BODY` = description, `CATEGORIES` (`;`-separated),
//!   `CLASS`, `DCREATED`, `LAST-MODIFIED`, unknown `X-` properties; QUOTED-PRINTABLE
//!   with `CHARSET=UTF-8` for non-ASCII text and line breaks. `X-IRMC-LUID` (a phone's
//!   record number) is read and dropped, never written. A vNote without `SUBJECT` takes
//!   the first line of `BODY` as its summary, like plain text.

use super::calendar::{CalComponent, CalendarItem, CalendarKind};
use super::caltime::CalTime;
use super::ical::{self, Component};
use super::vcard::{escape_text, split_escaped, unescape_text};
use super::ItemError;

fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// Splits text into (first line, rest), both without surrounding line breaks.
fn split_first_line(text: &str) -> (Option<String>, Option<String>) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim_end();
    if text.is_empty() {
        return (None, None);
    }
    match text.split_once('\n') {
        Some((first, rest)) => {
            let rest = rest.trim_end();
            (
                Some(first.trim_end().to_string()),
                (!rest.is_empty()).then(|| rest.to_string()),
            )
        }
        None => (Some(text.to_string()), None),
    }
}

/// The plain-text form of a calendar item (summary, then description).
pub fn to_plain(item: &CalendarItem) -> Vec<u8> {
    let Some(m) = item.master.as_ref().or(item.instances.first()) else {
        return Vec::new();
    };
    let summary = m
        .summary
        .as_deref()
        .unwrap_or_default()
        .replace(['\r', '\n'], " ");
    let mut out = summary;
    if let Some(d) = m.description.as_deref().filter(|d| !d.is_empty()) {
        out.push_str("\r\n");
        out.push_str(&crlf(d));
    }
    out.into_bytes()
}

/// Reads a plain-text memo.
pub fn from_plain(data: &[u8]) -> Result<CalendarItem, ItemError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let text = std::str::from_utf8(data)
        .map_err(|e| ItemError::Malformed(format!("memo text is not UTF-8 ({e})")))?;
    if text.contains('\0') {
        return Err(ItemError::Malformed("memo text holds a NUL byte".into()));
    }
    let (summary, description) = split_first_line(text);
    Ok(CalendarItem::new(
        CalendarKind::Journal,
        CalComponent {
            summary,
            description,
            ..Default::default()
        },
    ))
}

/// The vNote 1.1 form of a calendar item.
pub fn to_vnote(item: &CalendarItem) -> Vec<u8> {
    let mut c = Component::new("VNOTE");
    if let Some(m) = item.master.as_ref().or(item.instances.first()) {
        if let Some(s) = &m.summary {
            c.push_text("SUBJECT", s);
        }
        if let Some(d) = &m.description {
            c.push_text("BODY", d);
        }
        if !m.categories.is_empty() {
            let list: Vec<String> = m.categories.iter().map(|s| escape_text(s)).collect();
            c.push_raw("CATEGORIES", &list.join(";"));
        }
        if let Some(s) = &m.class {
            c.push_raw("CLASS", s);
        }
        if let Some(t) = &m.created {
            c.push_raw("DCREATED", &t.value_text());
        }
        if let Some(t) = &m.last_modified {
            c.push_raw("LAST-MODIFIED", &t.value_text());
        }
        c.props.extend(
            m.extra
                .iter()
                .filter(|p| p.name.starts_with("X-") && p.name != "X-IRMC-LUID")
                .cloned(),
        );
    }
    let mut out = String::new();
    ical::write_legacy(&mut out, &c, Some("1.1"));
    out.into_bytes()
}

/// Reads a vNote.
pub fn from_vnote(parsed: ical::Parsed) -> Result<CalendarItem, ItemError> {
    let mut notes = parsed.components.into_iter();
    let note = notes
        .next()
        .filter(|c| c.name == "VNOTE")
        .ok_or_else(|| ItemError::Malformed("expected BEGIN:VNOTE".into()))?;
    if notes.next().is_some() {
        return Err(ItemError::Malformed(
            "more than one vNote in one item".into(),
        ));
    }
    let mut m = CalComponent::default();
    let mut body = None;
    for p in note.props {
        let plain = p.group.is_none() && p.params.is_empty();
        match p.name.as_str() {
            "SUBJECT" | "SUMMARY" if m.summary.is_none() => m.summary = Some(p.text_value()),
            "BODY" | "DESCRIPTION" if body.is_none() => body = Some(p.text_value()),
            "CATEGORIES" => m.categories.extend(
                split_escaped(&p.value, ';')
                    .into_iter()
                    .flat_map(|s| split_escaped(s, ','))
                    .map(|s| unescape_text(s).trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            "CLASS" if plain && m.class.is_none() => {
                m.class = Some(p.value.trim().to_ascii_uppercase())
            }
            "DCREATED" | "CREATED"
                if m.created.is_none() && CalTime::parse(&p.value, None, None).is_some() =>
            {
                m.created = CalTime::parse(&p.value, None, None)
            }
            "LAST-MODIFIED"
                if m.last_modified.is_none() && CalTime::parse(&p.value, None, None).is_some() =>
            {
                m.last_modified = CalTime::parse(&p.value, None, None)
            }
            "X-IRMC-LUID" => {}
            _ => m.extra.push(p),
        }
    }
    match (&m.summary, body) {
        (Some(_), b) => m.description = b.filter(|b| !b.is_empty()),
        (None, Some(b)) => (m.summary, m.description) = split_first_line(&b),
        (None, None) => {}
    }
    Ok(CalendarItem::new(CalendarKind::Journal, m))
}
