//! iCalendar-family syntax: parsing iCalendar 2.0, vCalendar 1.0 and vNote 1.1 text into
//! a tree of [`Component`]s, and writing components in the 2.0 syntax (RFC 5545
//! escaping, folding at 75 octets) or in the legacy 1.x syntax (QUOTED-PRINTABLE with
//! `CHARSET=UTF-8` for non-ASCII text and line breaks).
//!
//! Hand-written, on top of the line machinery of [`super::vcard`] (unfolding,
//! parameters, QUOTED-PRINTABLE, charsets). Crates evaluated first: `icalendar` 0.17 keeps
//! a component's properties in a `BTreeMap` keyed by name (input order is lost, and a
//! repeated property that is not on its "multi" list overwrites the previous one), so a
//! lossless, byte-stable pass-through of unknown properties is not possible, and it has
//! no vCalendar 1.0; `calcard` 0.3 (see `vcard.rs`) normalises values into typed enums,
//! has no QUOTED-PRINTABLE writer for 1.0 and pulls chrono-tz and friends into a phone
//! build. The syntax is small; the typed model lives in [`super::calendar`].
//!
//! Values are stored in the canonical (vCard 3.0 = RFC 5545) escaped form, see
//! [`super::vcard`].

use super::vcard::{self, Param, Property};
use super::ItemError;

/// Components nest at most this deep (VCALENDAR > VEVENT > VALARM is 3).
const MAX_DEPTH: usize = 8;

/// One component (`VEVENT`, `VALARM`, `VTIMEZONE`, `STANDARD`, `VNOTE`, …): upper-cased
/// name, properties in input order, sub-components in input order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Component {
    pub name: String,
    pub props: Vec<Property>,
    pub subs: Vec<Component>,
}

impl Component {
    pub fn new(name: &str) -> Component {
        Component {
            name: name.to_ascii_uppercase(),
            ..Default::default()
        }
    }

    /// The first property called `name`.
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.props.iter().find(|p| p.name == name)
    }

    /// The unescaped text of the first property called `name`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.prop(name).map(Property::text_value)
    }

    /// Appends a property with an unescaped text value.
    pub fn push_text(&mut self, name: &str, text: &str) {
        self.props.push(Property::text(name, text));
    }

    /// Appends a property whose value is written as is (dates, rules, numbers).
    pub fn push_raw(&mut self, name: &str, value: &str) {
        self.props.push(Property {
            group: None,
            name: name.to_string(),
            params: Vec::new(),
            value: value.to_string(),
        });
    }
}

/// Parsed text: the `VERSION` of the outermost component and the top-level components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub version: Option<String>,
    pub components: Vec<Component>,
}

/// Parses one or more top-level components. The first `VERSION` line decides the syntax:
/// `1.0` (vCalendar) and `1.1` (vNote) are read like vCard 2.1 (QUOTED-PRINTABLE,
/// CHARSET, unescaped commas), anything else as RFC 5545. `VERSION` lines are not kept
/// as properties.
pub fn parse(data: &[u8]) -> Result<Parsed, ItemError> {
    let mut raw = Vec::new();
    for line in vcard::logical_lines(data) {
        if line.bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        raw.push(vcard::parse_line(&line)?);
    }
    if raw.is_empty() {
        return Err(ItemError::Malformed("empty input".into()));
    }
    let version = raw
        .iter()
        .find(|l| l.name == "VERSION")
        .map(|l| String::from_utf8_lossy(l.raw_value.trim_ascii()).into_owned());
    let legacy = matches!(version.as_deref(), Some("1.0") | Some("1.1"));

    let mut stack: Vec<Component> = Vec::new();
    let mut done: Vec<Component> = Vec::new();
    for line in raw {
        let number = line.number;
        match line.name.as_str() {
            "BEGIN" => {
                let name = component_name(&line.raw_value, number)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(ItemError::Malformed(format!(
                        "line {number}: components nested too deeply"
                    )));
                }
                stack.push(Component::new(&name));
            }
            "END" => {
                let name = component_name(&line.raw_value, number)?;
                let Some(c) = stack.pop() else {
                    return Err(ItemError::Malformed(format!(
                        "line {number}: END:{name} without BEGIN"
                    )));
                };
                if c.name != name {
                    return Err(ItemError::Malformed(format!(
                        "line {number}: END:{name} closes BEGIN:{}",
                        c.name
                    )));
                }
                match stack.last_mut() {
                    Some(parent) => parent.subs.push(c),
                    None => done.push(c),
                }
            }
            _ => {
                let Some(current) = stack.last_mut() else {
                    return Err(ItemError::Malformed(format!(
                        "line {number}: {} outside of any component",
                        line.name
                    )));
                };
                if line.name == "VERSION" {
                    continue;
                }
                current.props.push(vcard::decode_value(line, legacy)?);
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(ItemError::Malformed(format!("missing END:{}", open.name)));
    }
    Ok(Parsed {
        version,
        components: done,
    })
}

fn component_name(raw: &[u8], number: usize) -> Result<String, ItemError> {
    let name = std::str::from_utf8(raw.trim_ascii())
        .unwrap_or_default()
        .to_ascii_uppercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ItemError::Malformed(format!(
            "line {number}: invalid component name"
        )));
    }
    Ok(name)
}

// ------------------------------------------------------------------ writing, 2.0

/// Quotes a parameter value holding `,` `;` or `:` (RFC 5545 3.2); `"` cannot be
/// represented and becomes `'`.
fn param_value(v: &str) -> String {
    let v = v.replace('"', "'").replace(['\r', '\n'], " ");
    if v.contains([',', ';', ':']) {
        format!("\"{v}\"")
    } else {
        v
    }
}

/// Writes `c` in the RFC 5545 syntax (CRLF line ends, folded at 75 octets).
pub fn write_20(out: &mut String, c: &Component) {
    out.push_str("BEGIN:");
    out.push_str(&c.name);
    out.push_str("\r\n");
    for p in &c.props {
        write_prop_20(out, p);
    }
    for s in &c.subs {
        write_20(out, s);
    }
    out.push_str("END:");
    out.push_str(&c.name);
    out.push_str("\r\n");
}

fn write_prop_20(out: &mut String, p: &Property) {
    let mut line = String::with_capacity(p.name.len() + p.value.len() + 16);
    if let Some(g) = &p.group {
        line.push_str(g);
        line.push('.');
    }
    line.push_str(&p.name);
    let binary = p.is_binary();
    for param in &p.params {
        line.push(';');
        line.push_str(&param.name);
        if !param.values.is_empty() {
            line.push('=');
            if binary && param.name == "ENCODING" {
                line.push_str("BASE64");
                continue;
            }
            let vals: Vec<String> = param.values.iter().map(|v| param_value(v)).collect();
            line.push_str(&vals.join(","));
        }
    }
    line.push(':');
    line.push_str(&p.value.replace(['\r', '\n'], ""));
    vcard::fold_30(out, &line);
}

// ------------------------------------------------------------------ writing, 1.x

/// Converts a canonical value to legacy (1.x) text: `\n` becomes CRLF, `\,` a comma,
/// `\\` a backslash; `\;` stays escaped (in 1.x `;` separates components).
fn canonical_to_legacy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push_str("\r\n"),
            Some(',') => out.push(','),
            Some(';') => out.push_str("\\;"),
            Some('\\') => out.push_str("\\\\"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push_str("\\\\"),
        }
    }
    out
}

/// Writes `c` in the legacy 1.x syntax (vCalendar 1.0, vNote 1.1); `version` is written
/// right after `BEGIN` of this component.
pub fn write_legacy(out: &mut String, c: &Component, version: Option<&str>) {
    out.push_str("BEGIN:");
    out.push_str(&c.name);
    out.push_str("\r\n");
    if let Some(v) = version {
        out.push_str("VERSION:");
        out.push_str(v);
        out.push_str("\r\n");
    }
    for p in &c.props {
        write_prop_legacy(out, p);
    }
    for s in &c.subs {
        write_legacy(out, s, None);
    }
    out.push_str("END:");
    out.push_str(&c.name);
    out.push_str("\r\n");
}

fn write_prop_legacy(out: &mut String, p: &Property) {
    let mut line = String::new();
    if let Some(g) = &p.group {
        line.push_str(g);
        line.push('.');
    }
    line.push_str(&p.name);
    let binary = p.is_binary();
    for param in &p.params {
        if binary && param.name == "ENCODING" {
            continue;
        }
        line.push(';');
        line.push_str(&param.name);
        if !param.values.is_empty() {
            line.push('=');
            let vals: Vec<String> = param
                .values
                .iter()
                .map(|v| v.replace([';', ':', '"', '\r', '\n'], ""))
                .collect();
            line.push_str(&vals.join(","));
        }
    }
    if binary {
        line.push_str(";ENCODING=BASE64:");
        out.push_str(&line);
        out.push_str("\r\n");
        for chunk in p.value.as_bytes().chunks(74) {
            out.push(' ');
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        return;
    }
    let value = canonical_to_legacy(&p.value);
    if value.is_ascii() && !value.contains(['\r', '\n']) {
        line.push(':');
        line.push_str(&value);
        out.push_str(&line);
        out.push_str("\r\n");
        return;
    }
    line.push_str(";ENCODING=QUOTED-PRINTABLE");
    if !value.is_ascii() {
        line.push_str(";CHARSET=UTF-8");
    }
    line.push(':');
    vcard::qp_encode_into(out, &line, value.as_bytes());
}

/// A parameter with one value.
pub fn param(name: &str, value: &str) -> Param {
    Param {
        name: name.to_string(),
        values: vec![value.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_and_round_trip() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:Caf\u{e9}\\, \\;x\\n2\r\nBEGIN:VALARM\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.version.as_deref(), Some("2.0"));
        let cal = &parsed.components[0];
        assert_eq!(cal.name, "VCALENDAR");
        assert_eq!(cal.props.len(), 1, "VERSION is not kept");
        let ev = &cal.subs[0];
        assert_eq!(ev.text("SUMMARY").as_deref(), Some("Caf\u{e9}, ;x\n2"));
        assert_eq!(ev.subs[0].name, "VALARM");
        let mut out = String::new();
        write_20(&mut out, ev);
        assert!(out.contains("SUMMARY:Caf\u{e9}\\, \\;x\\n2\r\n"), "{out}");
    }

    #[test]
    fn legacy_qp() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nSUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=C3=BC=C3=9Fe, a=0D=0Ab\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = parse(text.as_bytes()).unwrap();
        let ev = &parsed.components[0].subs[0];
        assert_eq!(ev.text("SUMMARY").as_deref(), Some("Grüße, a\nb"));
        let mut out = String::new();
        write_legacy(&mut out, ev, None);
        assert!(
            out.contains(
                "SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=C3=BC=C3=9Fe, a=0D=0Ab\r\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn structure_errors() {
        for bad in [
            "",
            "BEGIN:VEVENT\r\nUID:x\r\n",
            "UID:x\r\n",
            "BEGIN:VEVENT\r\nEND:VTODO\r\n",
            "END:VEVENT\r\n",
            "BEGIN:\r\nEND:\r\n",
            "BEGIN:VEVENT\r\nno colon\r\nEND:VEVENT\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "BEGIN:X\r\n".repeat(20) + &"END:X\r\n".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
