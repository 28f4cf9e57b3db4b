//! Parse D-Bus introspection XML into comparable sets of methods, signals
//! and properties (with signatures), e.g. to compare the live daemon with
//! `dbus-interfaces/*.xml`.

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::Result;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// method name -> (in signature, out signature)
    pub methods: BTreeMap<String, (String, String)>,
    /// signal name -> signature
    pub signals: BTreeMap<String, String>,
    /// property name -> (type, access)
    pub properties: BTreeMap<String, (String, String)>,
}

impl Interface {
    /// One line per member, e.g. `method Backup() -> (o)`.
    pub fn members(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        for (n, (i, o)) in &self.methods {
            s.insert(format!("method {n}({i}) -> ({o})"));
        }
        for (n, sig) in &self.signals {
            s.insert(format!("signal {n}({sig})"));
        }
        for (n, (t, a)) in &self.properties {
            s.insert(format!("property {n}: {t} {a}"));
        }
        s
    }
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// All interfaces described in `xml` (nested `<node>`s are ignored).
pub fn parse(xml: &str) -> Result<BTreeMap<String, Interface>> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut out = BTreeMap::new();
    let mut depth_node = 0usize;
    let mut cur: Option<Interface> = None;
    // (kind, name, in sig, out sig)
    let mut member: Option<(String, String, String, String)> = None;
    loop {
        let ev = reader.read_event().map_err(|e| format!("introspection XML: {e}"))?;
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
            match tag.as_str() {
                "node"
                    if !empty => {
                        depth_node += 1
                    }
                "interface" if depth_node <= 1 => {
                    let i = Interface { name: attr(&e, "name").unwrap_or_default(), ..Default::default() };
                    if empty {
                        out.insert(i.name.clone(), i);
                    } else {
                        cur = Some(i);
                    }
                }
                "method" | "signal" if cur.is_some() => {
                    let m = (tag.clone(), attr(&e, "name").unwrap_or_default(), String::new(), String::new());
                    if empty {
                        finish_member(cur.as_mut().unwrap(), m);
                    } else {
                        member = Some(m);
                    }
                }
                "arg" => {
                    if let Some(m) = member.as_mut() {
                        let ty = attr(&e, "type").unwrap_or_default();
                        let dir = attr(&e, "direction").unwrap_or_else(|| if m.0 == "signal" { "out".into() } else { "in".into() });
                        if m.0 == "method" && dir == "out" {
                            m.3.push_str(&ty);
                        } else {
                            m.2.push_str(&ty);
                        }
                    }
                }
                "property" => {
                    if let Some(i) = cur.as_mut() {
                        i.properties.insert(
                            attr(&e, "name").unwrap_or_default(),
                            (attr(&e, "type").unwrap_or_default(), attr(&e, "access").unwrap_or_default()),
                        );
                    }
                }
                _ => {}
            }
        } else {
            match ev {
                Event::End(e) => match e.name().as_ref() {
                    b"node" => depth_node = depth_node.saturating_sub(1),
                    b"interface" => {
                        if let Some(i) = cur.take() {
                            out.insert(i.name.clone(), i);
                        }
                    }
                    b"method" | b"signal" => {
                        if let (Some(i), Some(m)) = (cur.as_mut(), member.take()) {
                            finish_member(i, m);
                        }
                    }
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
    }
    Ok(out)
}

fn finish_member(i: &mut Interface, m: (String, String, String, String)) {
    if m.0 == "method" {
        i.methods.insert(m.1, (m.2, m.3));
    } else {
        i.signals.insert(m.1, m.2);
    }
}

/// `Introspect()` of `path` at `dest` on `conn`.
pub async fn introspect(conn: &zbus::Connection, dest: &str, path: &str) -> Result<String> {
    let p = zbus::fdo::IntrospectableProxy::builder(conn).destination(dest.to_string())?.path(path.to_string())?.build().await?;
    Ok(p.introspect().await?)
}

/// Human-readable difference between two interfaces (empty: equal).
pub fn diff(expected: &Interface, actual: &Interface) -> Vec<String> {
    let e = expected.members();
    let a = actual.members();
    let mut d: Vec<String> = e.difference(&a).map(|m| format!("missing in live daemon: {m}")).collect();
    d.extend(a.difference(&e).map(|m| format!("not in XML file: {m}")));
    d
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_methods_signals_properties() {
        let xml = r#"<node><interface name="a.B">
            <method name="M"><arg name="x" type="a{sv}" direction="in"/><arg type="o" direction="out"/></method>
            <method name="N"/>
            <signal name="S"><arg type="s"/><arg type="u"/></signal>
            <property name="P" type="as" access="read"><annotation name="x" value="y"/></property>
          </interface><node name="child"/></node>"#;
        let m = super::parse(xml).unwrap();
        let i = &m["a.B"];
        assert_eq!(i.methods["M"], ("a{sv}".into(), "o".into()));
        assert_eq!(i.methods["N"], ("".into(), "".into()));
        assert_eq!(i.signals["S"], "su");
        assert_eq!(i.properties["P"], ("as".into(), "read".into()));
    }
}
