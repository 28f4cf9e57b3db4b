//! Conversions between D-Bus values and the service's own types.

use std::collections::{BTreeMap, HashMap};

use zbus::zvariant::{OwnedValue, Value};

use crate::engine::report::{ClassReport, JobReport};
use crate::profile::store::JobRecord;
use crate::profile::{Account, RosterEntry, SettingValue};

pub type Dict = HashMap<String, OwnedValue>;

/// `a{sv}` from a client → settings the profile layer validates.
pub fn settings_from_dbus(map: &Dict) -> BTreeMap<String, SettingValue> {
    map.iter()
        .map(|(k, v)| {
            let sv = match &**v {
                Value::Str(s) => SettingValue::Str(s.as_str().to_string()),
                Value::Bool(b) => SettingValue::Bool(*b),
                Value::Array(a) if a.element_signature() == "s" => SettingValue::StrList(
                    a.iter().filter_map(|x| if let Value::Str(s) = x { Some(s.as_str().to_string()) } else { None }).collect(),
                ),
                other => SettingValue::Other { type_name: other.value_signature().to_string() },
            };
            (k.clone(), sv)
        })
        .collect()
}

fn owned(v: Value<'_>) -> OwnedValue {
    // Only values carrying file descriptors cannot be owned; none are built here.
    OwnedValue::try_from(v).expect("value without file descriptors")
}

fn dict_value(map: HashMap<String, Value<'static>>) -> Value<'static> {
    Value::from(map)
}

pub fn account_to_dbus(a: &Account, has_password: bool) -> Dict {
    let mut d: Dict = HashMap::new();
    let mut put = |k: &str, v: Value<'_>| {
        d.insert(k.to_string(), owned(v));
    };
    put("protocol", Value::from(a.protocol.as_str()));
    put("im_id", Value::from(a.im_id.as_str()));
    put("account", Value::from(a.name()));
    put("display_name", Value::from(a.display_name.as_str()));
    put("server_url", Value::from(a.server_url.as_str()));
    put("username", Value::from(a.username.as_str()));
    put("server_cert_sha256", Value::from(a.server_cert_sha256.as_str()));
    put("has_password", Value::from(has_password));
    put("is_default", Value::from(a.is_default));
    d.extend(classes_to_dbus(a));
    d
}

/// Per class C: `C.uri`, `C.mode`, `C.enabled`.
pub fn classes_to_dbus(a: &Account) -> Dict {
    let mut d: Dict = HashMap::new();
    for class in crate::class::DataClass::ALL {
        let cs = a.class(class);
        d.insert(format!("{class}.uri"), owned(Value::from(cs.remote_uri.as_str())));
        d.insert(format!("{class}.mode"), owned(Value::from(cs.mode.as_str())));
        d.insert(format!("{class}.enabled"), owned(Value::from(cs.enabled)));
    }
    d
}

/// One roster entry: `im_id`, `name`, `groups`, `subscription`.
pub fn roster_entry_to_dbus(e: &RosterEntry) -> Dict {
    let mut d: Dict = HashMap::new();
    d.insert("im_id".into(), owned(Value::from(e.im_id.as_str())));
    d.insert("name".into(), owned(Value::from(e.name.as_str())));
    d.insert("groups".into(), owned(Value::from(e.groups.clone())));
    d.insert("subscription".into(), owned(Value::from(e.subscription.as_str())));
    d
}

fn class_report(c: &ClassReport) -> Value<'static> {
    let mut m: HashMap<String, Value<'static>> = HashMap::new();
    m.insert("state".into(), Value::from(c.state.as_str().to_string()));
    m.insert("mode".into(), Value::from(c.mode.clone()));
    m.insert("added".into(), Value::from(c.added));
    m.insert("replaced".into(), Value::from(c.replaced));
    m.insert("deleted".into(), Value::from(c.deleted));
    m.insert("failed".into(), Value::from(c.failed));
    m.insert("items".into(), Value::from(c.items));
    m.insert("errors".into(), Value::from(c.errors.clone()));
    m.insert("error".into(), Value::from(c.error.clone()));
    m.insert("server_other_items".into(), Value::from(c.server_other_items));
    dict_value(m)
}

pub fn report_to_dbus(r: &JobReport, job_id: Option<u64>) -> Dict {
    let mut d: Dict = HashMap::new();
    if let Some(id) = job_id {
        d.insert("job".into(), owned(Value::from(id)));
    }
    d.insert("account".into(), owned(Value::from(r.account.as_str())));
    d.insert("kind".into(), owned(Value::from(r.kind.as_str())));
    d.insert("state".into(), owned(Value::from(r.state.as_str())));
    d.insert("error".into(), owned(Value::from(r.error.as_str())));
    d.insert("started".into(), owned(Value::from(r.started)));
    d.insert("finished".into(), owned(Value::from(r.finished)));
    d.insert("time".into(), owned(Value::from(r.finished)));
    d.insert("messages".into(), owned(Value::from(r.messages_sent)));
    d.insert("bytes_sent".into(), owned(Value::from(r.bytes_sent)));
    d.insert("bytes_received".into(), owned(Value::from(r.bytes_received)));
    let classes: HashMap<String, Value<'static>> = r.classes.iter().map(|(k, c)| (k.clone(), class_report(c))).collect();
    d.insert("classes".into(), owned(dict_value(classes)));
    d
}

/// A history entry: the stored report if it can be read, else the bare record.
pub fn record_to_dbus(j: &JobRecord) -> Dict {
    if let Ok(r) = serde_json::from_value::<JobReport>(j.report.clone()) {
        return report_to_dbus(&r, Some(j.id));
    }
    let mut d: Dict = HashMap::new();
    d.insert("job".into(), owned(Value::from(j.id)));
    d.insert("account".into(), owned(Value::from(j.account.as_str())));
    d.insert("kind".into(), owned(Value::from(j.kind.as_str())));
    d.insert("state".into(), owned(Value::from(j.state.as_str())));
    d.insert("error".into(), owned(Value::from(j.error.as_str())));
    d.insert("started".into(), owned(Value::from(j.started_at)));
    d.insert("finished".into(), owned(Value::from(j.finished_at.unwrap_or(0))));
    d.insert("time".into(), owned(Value::from(j.finished_at.unwrap_or(0))));
    d
}
