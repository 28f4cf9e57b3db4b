//! Operator provisioning: the sync settings of an account from an OMA Client Provisioning
//! document (the XML form of a WAP provisioning document, `<wap-provisioningdoc>`).
//!
//! The settings come from the one `<characteristic type="APPLICATION">` whose `APPID` parm
//! is `w5` (OMA DS / SyncML):
//!
//! - `ADDR` parm (or `ADDR` in an `APPADDR` characteristic): the server URL (http or https);
//! - `APPAUTH` characteristic with `AAUTHLEVEL` `APPSRV` (or none): `AAUTHNAME` the user
//!   name, `AAUTHSECRET` the password. An `APPAUTH` of level `CLIENT` (how the server proves
//!   itself for server-alerted sync, which imsync does not do) is ignored;
//! - one `RESOURCE` characteristic per remote database: `URI` (required), `AACCEPT` (content
//!   types, comma separated), `NAME`. The data class is chosen by the content type (vCard →
//!   contacts or roster, iCalendar/vCalendar → calendar or tasks, text/plain or vNote →
//!   notes, vMessage → sms), and within that by words in `NAME` or `URI` (`task`, `todo`,
//!   `roster`, `buddy`, ...); without `AACCEPT` the words alone decide.
//!
//! Other applications in the document (browser, MMS, ...) are ignored. The parser is pure
//! (text in, settings or a named problem out) and never puts the password into an error.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};

use super::settings::{AccountUpdate, SettingValue};
use super::ProfileError;
use crate::class::DataClass;

/// The largest document accepted.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// The deepest nesting of elements accepted.
pub const MAX_DEPTH: usize = 8;

/// Why a document cannot be used. The messages name the problem and never hold the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisioningError {
    #[error("the document is larger than {MAX_DOCUMENT} bytes")]
    TooLarge,
    #[error("the document is not well-formed XML: {0}")]
    NotXml(String),
    #[error("not an OMA Client Provisioning document: the root element is <{0}>, expected <wap-provisioningdoc>")]
    NotProvisioningDoc(String),
    #[error("elements are nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("<{element}> lacks its '{attribute}' attribute")]
    MissingAttribute { element: String, attribute: String },
    #[error("<parm name=\"{0}\"> is outside any characteristic")]
    ParmOutsideCharacteristic(String),
    #[error("no APPLICATION characteristic with APPID w5 (OMA DS / SyncML) in the document{0}")]
    NoSyncApplication(String),
    #[error("the document has {0} APPLICATION characteristics with APPID w5; expected one")]
    SeveralSyncApplications(usize),
    #[error("{characteristic} gives {parm} more than once")]
    DuplicateParm { characteristic: String, parm: String },
    #[error("the w5 APPLICATION has no ADDR (the SyncML server URL)")]
    MissingAddr,
    #[error("ADDR '{url}' is not a usable server URL: {reason}")]
    BadServerUrl { url: String, reason: String },
    #[error("APPAUTH: {0}")]
    BadAppAuth(String),
    #[error("the w5 APPLICATION has no RESOURCE (remote database)")]
    NoResources,
    #[error("RESOURCE {0} has no URI (the remote database)")]
    ResourceWithoutUri(String),
    #[error("RESOURCE {resource}: URI '{uri}' is not a usable database name: {reason}")]
    BadUri { resource: String, uri: String, reason: String },
    #[error("RESOURCE {resource}: {reason}")]
    UnknownClass { resource: String, reason: String },
    #[error("RESOURCE {first} and RESOURCE {second} are both for {class}")]
    DuplicateClass { first: String, second: String, class: DataClass },
}

/// One remote database of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub class: DataClass,
    pub uri: String,
    pub name: Option<String>,
}

/// What a document provisions.
#[derive(Clone, PartialEq, Eq)]
pub struct Provisioning {
    /// The application's `NAME` (the operator's name for the profile), if any.
    pub profile_name: Option<String>,
    pub server_url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub resources: Vec<Resource>,
}

impl std::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioning")
            .field("profile_name", &self.profile_name)
            .field("server_url", &self.server_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("resources", &self.resources)
            .finish()
    }
}

impl Provisioning {
    /// The `SetAccount` keys this document sets: the server, the credentials it gives, and
    /// per class `C.uri` + `C.enabled` (classes without a RESOURCE are turned off: the
    /// operator's server has no database for them).
    pub fn settings(&self) -> BTreeMap<String, SettingValue> {
        let mut m = BTreeMap::new();
        m.insert("server_url".to_string(), SettingValue::Str(self.server_url.clone()));
        if let Some(u) = &self.username {
            m.insert("username".to_string(), SettingValue::Str(u.clone()));
        }
        if let Some(p) = &self.password {
            m.insert("password".to_string(), SettingValue::Str(p.clone()));
        }
        for class in DataClass::ALL {
            let res = self.resources.iter().find(|r| r.class == class);
            m.insert(format!("{class}.enabled"), SettingValue::Bool(res.is_some()));
            if let Some(r) = res {
                m.insert(format!("{class}.uri"), SettingValue::Str(r.uri.clone()));
            }
        }
        m
    }
}

/// A characteristic with its parms (in order) and nested characteristics.
#[derive(Debug, Default)]
struct Characteristic {
    kind: String,
    parms: Vec<(String, String)>,
    children: Vec<Characteristic>,
}

impl Characteristic {
    /// The value of parm `name`; an error if it is given twice.
    fn parm(&self, name: &str, what: &str) -> Result<Option<&str>, ProvisioningError> {
        let mut found = self.parms.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(ProvisioningError::DuplicateParm { characteristic: what.to_string(), parm: name.to_string() });
        }
        Ok(first)
    }

    fn children_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Characteristic> + 'a {
        self.children.iter().filter(move |c| c.kind.eq_ignore_ascii_case(kind))
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, ProvisioningError> {
    for a in e.attributes() {
        let a = a.map_err(|e| ProvisioningError::NotXml(format!("bad attribute: {e}")))?;
        if a.key.as_ref() == name.as_bytes() {
            let v = a.unescape_value().map_err(|_| {
                ProvisioningError::NotXml(
                    "an attribute value holds an unknown entity or a bad character reference".into(),
                )
            })?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn required_attr(e: &BytesStart<'_>, element: &str, name: &str) -> Result<String, ProvisioningError> {
    attr(e, name)?.ok_or_else(|| ProvisioningError::MissingAttribute {
        element: element.to_string(),
        attribute: name.to_string(),
    })
}

/// Read the document into its top-level characteristics.
fn read_tree(doc: &str) -> Result<Vec<Characteristic>, ProvisioningError> {
    let mut reader = quick_xml::Reader::from_str(doc);
    reader.config_mut().trim_text(true);
    // The open elements: None for elements other than characteristic (skipped with their parms).
    let mut stack: Vec<(String, Option<Characteristic>)> = Vec::new();
    let mut top: Vec<Characteristic> = Vec::new();
    let mut seen_root = false;
    let mut root_closed = false;
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| {
            let why = match e {
                quick_xml::Error::Escape(_) => "an unknown entity or a bad character reference".to_string(),
                other => other.to_string(),
            };
            ProvisioningError::NotXml(format!("near byte {pos}: {why}"))
        })?;
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            if !seen_root {
                if name != "wap-provisioningdoc" {
                    return Err(ProvisioningError::NotProvisioningDoc(name));
                }
                seen_root = true;
                if !empty {
                    stack.push((name, None));
                } else {
                    root_closed = true;
                }
                continue;
            }
            if root_closed {
                return Err(ProvisioningError::NotXml(format!("near byte {pos}: a second root element <{name}>")));
            }
            if stack.len() >= MAX_DEPTH {
                return Err(ProvisioningError::TooDeep);
            }
            let in_skipped = stack.len() > 1 && stack.last().is_some_and(|(_, c)| c.is_none());
            let node = match name.as_str() {
                "characteristic" if !in_skipped => {
                    Some(Characteristic { kind: required_attr(e, "characteristic", "type")?, ..Default::default() })
                }
                "parm" if !in_skipped => {
                    let pname = required_attr(e, "parm", "name")?;
                    let value = attr(e, "value")?.unwrap_or_default();
                    match stack.last_mut() {
                        Some((_, Some(c))) => c.parms.push((pname, value)),
                        _ => return Err(ProvisioningError::ParmOutsideCharacteristic(pname)),
                    }
                    None
                }
                _ => None,
            };
            if empty {
                if let Some(c) = node {
                    attach(&mut stack, &mut top, c);
                }
            } else {
                stack.push((name, node));
            }
            continue;
        }
        match ev {
            Event::End(_) => {
                let Some((_, node)) = stack.pop() else {
                    return Err(ProvisioningError::NotXml(format!("near byte {pos}: an end tag without a start tag")));
                };
                if let Some(c) = node {
                    attach(&mut stack, &mut top, c);
                }
                if stack.is_empty() {
                    root_closed = true;
                }
            }
            Event::Text(t) if stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ProvisioningError::NotXml(format!("near byte {pos}: text outside the root element")));
            }
            Event::CData(_) if stack.is_empty() => {
                return Err(ProvisioningError::NotXml(format!("near byte {pos}: text outside the root element")));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(ProvisioningError::NotXml("the document holds no element".into()));
    }
    if let Some((name, _)) = stack.last() {
        return Err(ProvisioningError::NotXml(format!("the document ends inside <{name}>")));
    }
    Ok(top)
}

fn attach(stack: &mut [(String, Option<Characteristic>)], top: &mut Vec<Characteristic>, c: Characteristic) {
    // Directly under the root, or under a characteristic; inside skipped elements: dropped.
    match stack.last_mut() {
        Some((_, Some(parent))) => parent.children.push(c),
        Some((name, None)) if name == "wap-provisioningdoc" => top.push(c),
        _ => {}
    }
}

/// Words in a RESOURCE's NAME or URI that say which class it holds, checked in this order.
const KEYWORDS: &[(DataClass, &[&str])] = &[
    (DataClass::Roster, &["roster", "buddy", "buddies", "friend"]),
    (DataClass::Tasks, &["task", "todo"]),
    (DataClass::Sms, &["sms", "message"]),
    (DataClass::Notes, &["note", "memo"]),
    (DataClass::Contacts, &["contact", "card", "address", "people", "phonebook"]),
    (DataClass::Calendar, &["calendar", "event", "cal", "agenda", "appointment"]),
];

/// The classes a content type can hold, the usual one first.
fn classes_for_type(mime: &str) -> Option<&'static [DataClass]> {
    Some(match mime {
        "text/x-vcard" | "text/vcard" | "text/directory" => &[DataClass::Contacts, DataClass::Roster],
        "text/calendar" | "text/x-vcalendar" => &[DataClass::Calendar, DataClass::Tasks],
        "text/plain" | "text/x-vnote" => &[DataClass::Notes],
        "text/x-vmessage" => &[DataClass::Sms],
        _ => return None,
    })
}

fn class_for(accept: Option<&str>, name: Option<&str>, uri: &str) -> Result<DataClass, String> {
    let words = format!("{} {}", name.unwrap_or(""), uri).to_lowercase();
    let by_word = KEYWORDS.iter().find(|(_, kws)| kws.iter().any(|k| words.contains(k))).map(|(c, _)| *c);
    let types: Vec<String> = accept
        .unwrap_or("")
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if types.is_empty() {
        return by_word.ok_or_else(|| {
            "has no AACCEPT and neither its NAME nor its URI says which data it holds (contacts, calendar, tasks, notes, sms, roster)".to_string()
        });
    }
    let mut candidates: Vec<DataClass> = Vec::new();
    for t in &types {
        let classes = classes_for_type(t).ok_or_else(|| {
            format!("AACCEPT '{t}' is not a content type imsync backs up (text/x-vcard, text/vcard, text/calendar, text/x-vcalendar, text/plain, text/x-vnote, text/x-vmessage)")
        })?;
        for c in classes {
            if !candidates.contains(c) {
                candidates.push(*c);
            }
        }
    }
    Ok(match by_word {
        Some(c) if candidates.contains(&c) => c,
        _ => candidates[0],
    })
}

fn describe(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("#{index} (\"{n}\")"),
        _ => format!("#{index}"),
    }
}

/// Parse an OMA Client Provisioning document.
pub fn parse(doc: &str) -> Result<Provisioning, ProvisioningError> {
    if doc.len() > MAX_DOCUMENT {
        return Err(ProvisioningError::TooLarge);
    }
    let top = read_tree(doc)?;
    let apps: Vec<&Characteristic> = top.iter().filter(|c| c.kind.eq_ignore_ascii_case("APPLICATION")).collect();
    let mut sync_apps = Vec::new();
    let mut others = Vec::new();
    for app in &apps {
        match app.parm("APPID", "APPLICATION")? {
            Some(id) if id.eq_ignore_ascii_case("w5") => sync_apps.push(*app),
            Some(id) => others.push(id.to_string()),
            None => others.push("(none)".to_string()),
        }
    }
    let app = match sync_apps.as_slice() {
        [] => {
            let found = if others.is_empty() {
                String::new()
            } else {
                format!(" (APPLICATIONs with APPID {})", others.join(", "))
            };
            return Err(ProvisioningError::NoSyncApplication(found));
        }
        [one] => *one,
        many => return Err(ProvisioningError::SeveralSyncApplications(many.len())),
    };
    let what = "the w5 APPLICATION";

    // the server
    let mut addr = app.parm("ADDR", what)?.map(str::to_string);
    for a in app.children_of("APPADDR") {
        if let Some(v) = a.parm("ADDR", "APPADDR")? {
            if addr.is_some() {
                return Err(ProvisioningError::DuplicateParm { characteristic: what.into(), parm: "ADDR".into() });
            }
            addr = Some(v.to_string());
        }
    }
    let server_url =
        addr.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).ok_or(ProvisioningError::MissingAddr)?;
    check("server_url", &server_url)
        .map_err(|reason| ProvisioningError::BadServerUrl { url: server_url.clone(), reason })?;

    // the credentials
    let mut auth: Option<&Characteristic> = None;
    for a in app.children_of("APPAUTH") {
        match a.parm("AAUTHLEVEL", "APPAUTH")?.map(str::to_ascii_uppercase).as_deref() {
            None | Some("APPSRV") => {
                if auth.is_some() {
                    return Err(ProvisioningError::BadAppAuth(
                        "more than one APPAUTH for the server (AAUTHLEVEL APPSRV)".into(),
                    ));
                }
                auth = Some(a);
            }
            Some("CLIENT") => {}
            Some(other) => {
                return Err(ProvisioningError::BadAppAuth(format!(
                    "unknown AAUTHLEVEL '{other}' (known: APPSRV, CLIENT)"
                )))
            }
        }
    }
    let (mut username, mut password) = (None, None);
    if let Some(a) = auth {
        username = a.parm("AAUTHNAME", "APPAUTH")?.map(str::to_string);
        password = a.parm("AAUTHSECRET", "APPAUTH")?.map(str::to_string);
        if password.is_some() && username.as_deref().is_none_or(str::is_empty) {
            return Err(ProvisioningError::BadAppAuth("AAUTHSECRET is given without AAUTHNAME".into()));
        }
        if let Some(u) = &username {
            check("username", u).map_err(|r| ProvisioningError::BadAppAuth(format!("AAUTHNAME is not usable: {r}")))?;
        }
        if let Some(p) = &password {
            check("password", p)
                .map_err(|r| ProvisioningError::BadAppAuth(format!("AAUTHSECRET is not usable: {r}")))?;
        }
    }

    // the databases
    let mut resources: Vec<(String, Resource)> = Vec::new();
    for (i, r) in app.children_of("RESOURCE").enumerate() {
        let label = describe(i + 1, r.parm("NAME", "RESOURCE")?);
        let what = format!("RESOURCE {label}");
        let name = r.parm("NAME", &what)?.map(str::to_string);
        let uri = r
            .parm("URI", &what)?
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ProvisioningError::ResourceWithoutUri(label.clone()))?;
        check("contacts.uri", &uri).map_err(|reason| ProvisioningError::BadUri {
            resource: label.clone(),
            uri: uri.clone(),
            reason,
        })?;
        let class = class_for(r.parm("AACCEPT", &what)?, name.as_deref(), &uri)
            .map_err(|reason| ProvisioningError::UnknownClass { resource: label.clone(), reason })?;
        if let Some((first, _)) = resources.iter().find(|(_, x)| x.class == class) {
            return Err(ProvisioningError::DuplicateClass { first: first.clone(), second: label, class });
        }
        resources.push((label, Resource { class, uri, name }));
    }
    if resources.is_empty() {
        return Err(ProvisioningError::NoResources);
    }
    Ok(Provisioning {
        profile_name: app.parm("NAME", what)?.map(str::to_string),
        server_url,
        username,
        password,
        resources: resources.into_iter().map(|(_, r)| r).collect(),
    })
}

/// Validate one value as the `SetAccount` key `key` would be; the reason if it is refused.
fn check(key: &str, value: &str) -> Result<(), String> {
    match AccountUpdate::parse(&BTreeMap::from([(key.to_string(), SettingValue::Str(value.to_string()))])) {
        Ok(_) => Ok(()),
        Err(ProfileError::InvalidArgs { reason, .. }) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const GOOD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE wap-provisioningdoc PUBLIC "-//WAPFORUM//DTD PROV 1.0//EN" "http://www.wapforum.org/DTD/prov.dtd">
<wap-provisioningdoc version="1.1">
  <characteristic type="BOOTSTRAP"><parm name="NAME" value="Example Operator"/></characteristic>
  <characteristic type="APPLICATION">
    <parm name="APPID" value="w2"/>
    <parm name="NAME" value="Browser"/>
  </characteristic>
  <characteristic type="APPLICATION">
    <parm name="APPID" value="w5"/>
    <parm name="NAME" value="Operator Backup"/>
    <parm name="ADDR" value="https://sync.example.org/syncml"/>
    <characteristic type="APPAUTH">
      <parm name="AAUTHLEVEL" value="APPSRV"/>
      <parm name="AAUTHNAME" value="alice"/>
      <parm name="AAUTHSECRET" value="s3cr&amp;t"/>
    </characteristic>
    <characteristic type="APPAUTH">
      <parm name="AAUTHLEVEL" value="CLIENT"/>
      <parm name="AAUTHNAME" value="server"/>
      <parm name="AAUTHSECRET" value="other"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="card"/><parm name="NAME" value="Address book"/><parm name="AACCEPT" value="text/x-vcard"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="events"/><parm name="NAME" value="Calendar"/><parm name="AACCEPT" value="text/x-vcalendar, text/calendar"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="todo"/><parm name="NAME" value="Tasks"/><parm name="AACCEPT" value="text/calendar"/>
    </characteristic>
    <characteristic type="RESOURCE">
      <parm name="URI" value="memos"/><parm name="AACCEPT" value="text/plain"/>
    </characteristic>
  </characteristic>
</wap-provisioningdoc>"#;

    fn w5(body: &str) -> String {
        format!(
            r#"<wap-provisioningdoc><characteristic type="APPLICATION"><parm name="APPID" value="w5"/>{body}</characteristic></wap-provisioningdoc>"#
        )
    }
    const RES: &str = r#"<characteristic type="RESOURCE"><parm name="URI" value="contacts"/><parm name="AACCEPT" value="text/vcard"/></characteristic>"#;
    const ADDR: &str = r#"<parm name="ADDR" value="http://h/sync"/>"#;

    #[test]
    fn reads_a_full_document() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.server_url, "https://sync.example.org/syncml");
        assert_eq!(p.username.as_deref(), Some("alice"));
        assert_eq!(p.password.as_deref(), Some("s3cr&t"));
        assert_eq!(p.profile_name.as_deref(), Some("Operator Backup"));
        let got: Vec<(DataClass, &str)> = p.resources.iter().map(|r| (r.class, r.uri.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (DataClass::Contacts, "card"),
                (DataClass::Calendar, "events"),
                (DataClass::Tasks, "todo"),
                (DataClass::Notes, "memos")
            ]
        );
        assert!(!format!("{p:?}").contains("s3cr"), "Debug must hide the password");
        let s = p.settings();
        assert_eq!(s["contacts.uri"], SettingValue::Str("card".into()));
        assert_eq!(s["sms.enabled"], SettingValue::Bool(false));
        assert_eq!(s["roster.enabled"], SettingValue::Bool(false));
        assert_eq!(s["tasks.enabled"], SettingValue::Bool(true));
        AccountUpdate::parse(&s).expect("the settings are valid SetAccount keys");
    }

    #[test]
    fn appaddr_and_keywords_without_aaccept() {
        let doc = w5(r#"<characteristic type="APPADDR"><parm name="ADDR" value="http://h:8080/sync"/></characteristic>
            <characteristic type="RESOURCE"><parm name="URI" value="./buddylist"/></characteristic>
            <characteristic type="RESOURCE"><parm name="URI" value="sms"/><parm name="AACCEPT" value="text/x-vmessage"/></characteristic>"#);
        let p = parse(&doc).unwrap();
        assert_eq!(p.server_url, "http://h:8080/sync");
        assert_eq!(p.username, None);
        assert_eq!(p.resources[0].class, DataClass::Roster);
        assert_eq!(p.resources[0].uri, "./buddylist");
        assert_eq!(p.resources[1].class, DataClass::Sms);
    }

    #[test]
    fn broken_documents_name_their_problem() {
        type Check = fn(&ProvisioningError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("this is not xml".into(), |e| matches!(e, ProvisioningError::NotXml(_))),
            ("<wap-provisioningdoc><characteristic type=\"A\">".into(), |e| matches!(e, ProvisioningError::NotXml(_))),
            ("<wap-provisioningdoc></other>".into(), |e| matches!(e, ProvisioningError::NotXml(_))),
            ("<html><body/></html>".into(), |e| matches!(e, ProvisioningError::NotProvisioningDoc(n) if n == "html")),
            (
                r#"<wap-provisioningdoc><characteristic type="APPLICATION"><parm name="APPID" value="w4"/></characteristic></wap-provisioningdoc>"#.into(),
                |e| matches!(e, ProvisioningError::NoSyncApplication(s) if s.contains("w4")),
            ),
            (w5(RES), |e| *e == ProvisioningError::MissingAddr),
            (w5(&format!(r#"<parm name="ADDR" value="ftp://h/x"/>{RES}"#)), |e| matches!(e, ProvisioningError::BadServerUrl { .. })),
            (w5(&format!(r#"<parm name="ADDR" value="not a url"/>{RES}"#)), |e| matches!(e, ProvisioningError::BadServerUrl { .. })),
            (w5(&format!("{ADDR}{ADDR}{RES}")), |e| matches!(e, ProvisioningError::DuplicateParm { .. })),
            (w5(ADDR), |e| *e == ProvisioningError::NoResources),
            (
                w5(&format!(r#"{ADDR}<characteristic type="RESOURCE"><parm name="NAME" value="Contacts"/></characteristic>"#)),
                |e| matches!(e, ProvisioningError::ResourceWithoutUri(r) if r.contains("Contacts")),
            ),
            (
                w5(&format!(r#"{ADDR}<characteristic type="RESOURCE"><parm name="URI" value="my contacts"/></characteristic>"#)),
                |e| matches!(e, ProvisioningError::BadUri { .. }),
            ),
            (
                w5(&format!(r#"{ADDR}<characteristic type="RESOURCE"><parm name="URI" value="pics"/><parm name="AACCEPT" value="image/jpeg"/></characteristic>"#)),
                |e| matches!(e, ProvisioningError::UnknownClass { reason, .. } if reason.contains("image/jpeg")),
            ),
            (
                w5(&format!(r#"{ADDR}<characteristic type="RESOURCE"><parm name="URI" value="db1"/></characteristic>"#)),
                |e| matches!(e, ProvisioningError::UnknownClass { .. }),
            ),
            (w5(&format!("{ADDR}{RES}{RES}")), |e| matches!(e, ProvisioningError::DuplicateClass { class: DataClass::Contacts, .. })),
            (
                w5(&format!(r#"{ADDR}<characteristic type="APPAUTH"><parm name="AAUTHSECRET" value="pw-only"/></characteristic>{RES}"#)),
                |e| matches!(e, ProvisioningError::BadAppAuth(_)),
            ),
            (
                w5(&format!(r#"{ADDR}<characteristic type="APPAUTH"><parm name="AAUTHLEVEL" value="OBEX"/></characteristic>{RES}"#)),
                |e| matches!(e, ProvisioningError::BadAppAuth(m) if m.contains("OBEX")),
            ),
            (format!("{}{}", w5(&format!("{ADDR}{RES}")), w5("")), |e| matches!(e, ProvisioningError::NotXml(_))),
            (
                r#"<wap-provisioningdoc><characteristic><parm name="APPID" value="w5"/></characteristic></wap-provisioningdoc>"#.into(),
                |e| matches!(e, ProvisioningError::MissingAttribute { .. }),
            ),
            (w5(&format!("{ADDR}{RES}")).replace("<wap-provisioningdoc>", "<wap-provisioningdoc><parm name=\"x\" value=\"y\"/>"), |e| {
                matches!(e, ProvisioningError::ParmOutsideCharacteristic(_))
            }),
            (format!("<wap-provisioningdoc>{}</wap-provisioningdoc>", "<characteristic type=\"x\">".repeat(20) + &"</characteristic>".repeat(20)), |e| {
                *e == ProvisioningError::TooDeep
            }),
            (format!("<wap-provisioningdoc>{}</wap-provisioningdoc>", " ".repeat(MAX_DOCUMENT)), |e| *e == ProvisioningError::TooLarge),
            (
                r#"<wap-provisioningdoc><characteristic type="APPLICATION"><parm name="APPID" value="w5"/></characteristic><characteristic type="APPLICATION"><parm name="APPID" value="w5"/></characteristic></wap-provisioningdoc>"#.into(),
                |e| *e == ProvisioningError::SeveralSyncApplications(2),
            ),
        ];
        for (doc, ok) in cases {
            match parse(&doc) {
                Err(e) => {
                    assert!(ok(&e), "{doc}\n→ unexpected error {e:?}");
                    assert!(!e.to_string().contains("pw-only"));
                }
                Ok(p) => panic!("{doc}\n→ accepted: {p:?}"),
            }
        }
        // and the minimal valid one is accepted
        assert!(parse(&w5(&format!("{ADDR}{RES}"))).is_ok());
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        // cheap fuzzing: every prefix, and every single-byte corruption of the good document
        for end in 0..GOOD.len() {
            if GOOD.is_char_boundary(end) {
                let _ = parse(&GOOD[..end]);
            }
        }
        let bytes = GOOD.as_bytes();
        for i in (0..bytes.len()).step_by(3) {
            for b in [b'<', b'>', b'"', b'&', b'/', 0u8, b'x'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                if let Ok(s) = std::str::from_utf8(&m) {
                    if let Err(e) = parse(s) {
                        assert!(!e.to_string().contains("s3cr"), "{e}");
                    }
                }
            }
        }
    }
}
