//! The IM friend list (roster) of an account, as a chat app hands it over with `SetRoster`,
//! and the validation of its entries.
//!
//! An entry is an IM id with a display name, the groups it is filed under and the presence
//! subscription state (`none`, `to`, `from`, `both`, as in XMPP). Groups are kept sorted and
//! without duplicates (the order of groups carries no meaning and servers do not keep it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use super::settings::SettingValue;
use super::ProfileError;

/// The most entries one roster may have.
pub const MAX_ENTRIES: usize = 100_000;
const MAX_LEN: usize = 4096;
const MAX_GROUPS: usize = 256;

/// The presence subscription between the account and a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    #[default]
    None,
    /// The account sees the contact's presence.
    To,
    /// The contact sees the account's presence.
    From,
    Both,
}

impl Subscription {
    pub const ALL: [Subscription; 4] = [Subscription::None, Subscription::To, Subscription::From, Subscription::Both];

    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Subscription {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Subscription::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown subscription '{s}' (known: none, to, from, both)"))
    }
}

/// One friend of the account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RosterEntry {
    /// The friend's IM id in the account's protocol (e.g. `bob@example.org`).
    pub im_id: String,
    /// The name the user gave the friend; empty = none.
    pub name: String,
    /// Sorted, without duplicates.
    pub groups: Vec<String>,
    pub subscription: Subscription,
}

impl RosterEntry {
    pub fn new(im_id: &str, name: &str, groups: &[&str], subscription: Subscription) -> Self {
        RosterEntry {
            im_id: im_id.to_string(),
            name: name.to_string(),
            groups: normalise_groups(groups.iter().map(|g| g.to_string())),
            subscription,
        }
    }
}

pub fn normalise_groups(groups: impl IntoIterator<Item = String>) -> Vec<String> {
    groups.into_iter().filter(|g| !g.is_empty()).collect::<BTreeSet<_>>().into_iter().collect()
}

fn invalid(key: String, why: &str) -> ProfileError {
    ProfileError::InvalidArgs { key, reason: why.to_string() }
}

fn text(key: &str, v: &SettingValue, what: &str) -> Result<String, ProfileError> {
    match v {
        SettingValue::Str(s) if s.len() > MAX_LEN => {
            Err(invalid(key.into(), &format!("{what} longer than {MAX_LEN} bytes")))
        }
        SettingValue::Str(s) if s.chars().any(char::is_control) => {
            Err(invalid(key.into(), &format!("{what} must not contain control characters")))
        }
        SettingValue::Str(s) => Ok(s.clone()),
        other => Err(invalid(key.into(), &format!("expected a string (s), got '{}'", other.type_name()))),
    }
}

/// Validate the entries of `SetRoster` (each an `a{sv}` with `im_id` s (required), `name` s,
/// `groups` as, `subscription` s). Errors name the entry (`entries[i].key`).
pub fn parse_entries(entries: &[BTreeMap<String, SettingValue>]) -> Result<Vec<RosterEntry>, ProfileError> {
    if entries.len() > MAX_ENTRIES {
        return Err(invalid("entries".into(), &format!("more than {MAX_ENTRIES} entries")));
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let key = |k: &str| format!("entries[{i}].{k}");
        let mut entry = RosterEntry::default();
        let mut has_id = false;
        for (k, v) in e {
            match k.as_str() {
                "im_id" => {
                    let id = text(&key(k), v, "an IM id")?;
                    if id.trim().is_empty() || id.trim() != id {
                        return Err(invalid(key(k), "an IM id must not be empty or start or end with white space"));
                    }
                    entry.im_id = id;
                    has_id = true;
                }
                "name" => entry.name = text(&key(k), v, "a name")?,
                "groups" => {
                    let SettingValue::StrList(list) = v else {
                        return Err(invalid(
                            key(k),
                            &format!("expected an array of strings (as), got '{}'", v.type_name()),
                        ));
                    };
                    if list.len() > MAX_GROUPS {
                        return Err(invalid(key(k), &format!("more than {MAX_GROUPS} groups")));
                    }
                    for g in list {
                        text(&key(k), &SettingValue::Str(g.clone()), "a group name")?;
                    }
                    entry.groups = normalise_groups(list.iter().cloned());
                }
                "subscription" => {
                    let s = text(&key(k), v, "a subscription")?;
                    entry.subscription = s.parse().map_err(|e: String| invalid(key(k), &e))?;
                }
                _ => return Err(invalid(key(k), "unknown key (known: im_id, name, groups, subscription)")),
            }
        }
        if !has_id {
            return Err(invalid(key("im_id"), "missing: every entry needs an IM id"));
        }
        if !seen.insert(entry.im_id.clone()) {
            return Err(invalid(key("im_id"), &format!("'{}' is listed twice", entry.im_id)));
        }
        out.push(entry);
    }
    out.sort_by(|a, b| a.im_id.cmp(&b.im_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(items: &[(&str, SettingValue)]) -> BTreeMap<String, SettingValue> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn s(v: &str) -> SettingValue {
        SettingValue::Str(v.into())
    }

    #[test]
    fn parses_and_normalises() {
        let got = parse_entries(&[
            entry(&[
                ("im_id", s("zoe@x")),
                ("groups", SettingValue::StrList(vec!["b".into(), "a".into(), "b".into(), "".into()])),
            ]),
            entry(&[("im_id", s("bob@x")), ("name", s("Bob")), ("subscription", s("Both"))]),
        ])
        .unwrap();
        assert_eq!(got[0], RosterEntry::new("bob@x", "Bob", &[], Subscription::Both));
        assert_eq!(got[1], RosterEntry::new("zoe@x", "", &["a", "b"], Subscription::None));
    }

    #[test]
    fn rejects_bad_entries_naming_them() {
        let cases: Vec<(Vec<(&str, SettingValue)>, &str)> = vec![
            (vec![("name", s("x"))], "entries[0].im_id"),
            (vec![("im_id", s(""))], "entries[0].im_id"),
            (vec![("im_id", s(" a"))], "entries[0].im_id"),
            (vec![("im_id", s("a")), ("colour", s("x"))], "entries[0].colour"),
            (vec![("im_id", s("a")), ("groups", s("x"))], "entries[0].groups"),
            (vec![("im_id", s("a")), ("subscription", s("mutual"))], "entries[0].subscription"),
            (vec![("im_id", s("a")), ("name", SettingValue::Bool(true))], "entries[0].name"),
            (vec![("im_id", s("a")), ("name", s("a\nb"))], "entries[0].name"),
        ];
        for (input, key) in cases {
            match parse_entries(&[entry(&input)]) {
                Err(ProfileError::InvalidArgs { key: k, .. }) => assert_eq!(k, key, "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let dup = parse_entries(&[entry(&[("im_id", s("a"))]), entry(&[("im_id", s("a"))])]);
        assert!(matches!(dup, Err(ProfileError::InvalidArgs { key, .. }) if key == "entries[1].im_id"));
    }
}
