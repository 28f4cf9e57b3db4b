//! Finding EDS on the bus (its versioned service names) and its address-book sources
//! (the source registry, `org.gnome.evolution.dataserver.Sources<N>`).

use std::collections::{HashMap, HashSet};

use zbus::fdo::{DBusProxy, ObjectManagerProxy};
use zbus::Connection;

/// The prefix of every EDS bus name and interface.
pub const DS: &str = "org.gnome.evolution.dataserver.";
/// The object path of the source registry.
pub const SOURCE_MANAGER_PATH: &str = "/org/gnome/evolution/dataserver/SourceManager";
const SOURCE_IFACE: &str = "org.gnome.evolution.dataserver.Source";
/// The UID of the built-in personal address book.
pub const SYSTEM_ADDRESS_BOOK: &str = "system-address-book";

/// The highest-versioned EDS services present on or activatable from the bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdsServices {
    /// e.g. `org.gnome.evolution.dataserver.Sources5`
    pub sources: Option<String>,
    /// e.g. `org.gnome.evolution.dataserver.AddressBook10`
    pub address_book: Option<String>,
    /// e.g. `org.gnome.evolution.dataserver.Calendar8`
    pub calendar: Option<String>,
}

/// Picks, for each EDS service, the name with the highest version number among `names`
/// (`org.gnome.evolution.dataserver.<Service><N>`, N decimal).
pub fn pick_services<'a>(names: impl IntoIterator<Item = &'a str>) -> EdsServices {
    let mut best: HashMap<&'static str, (u64, String)> = HashMap::new();
    for name in names {
        let Some(rest) = name.strip_prefix(DS) else {
            continue;
        };
        for service in ["Sources", "AddressBook", "Calendar"] {
            let Some(digits) = rest.strip_prefix(service) else {
                continue;
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(version) = digits.parse::<u64>() else {
                continue;
            };
            let entry = best.entry(service).or_insert((version, name.to_string()));
            if version > entry.0 {
                *entry = (version, name.to_string());
            }
        }
    }
    let mut take = |s: &str| best.remove(s).map(|(_, n)| n);
    EdsServices {
        sources: take("Sources"),
        address_book: take("AddressBook"),
        calendar: take("Calendar"),
    }
}

/// Lists the bus's names and activatable names and picks the EDS services from them.
pub async fn discover_services(conn: &Connection) -> zbus::Result<EdsServices> {
    let dbus = DBusProxy::new(conn).await?;
    let mut names: Vec<String> = dbus
        .list_names()
        .await?
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    names.extend(
        dbus.list_activatable_names()
            .await?
            .into_iter()
            .map(|n| n.to_string()),
    );
    Ok(pick_services(names.iter().map(String::as_str)))
}

/// An enabled address-book source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdsSourceInfo {
    /// The source UID (`system-address-book`, or a generated one).
    pub uid: String,
    /// The display name shown to people (`Personal`).
    pub display_name: String,
    /// The backend name (`local`, `carddav`, `ldap`, …).
    pub backend: String,
}

/// A parsed GKeyFile: group → key → value (localised keys `Key[xx]` are skipped).
pub(crate) type KeyFile = HashMap<String, HashMap<String, String>>;

/// Parses the GKeyFile text of a source's `Data` property.
pub(crate) fn parse_key_file(text: &str) -> KeyFile {
    let mut out: KeyFile = HashMap::new();
    let mut group: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(g) = line
            .strip_prefix('[')
            .and_then(|l| l.trim_end().strip_suffix(']'))
        {
            group = Some(g.to_string());
            out.entry(g.to_string()).or_default();
            continue;
        }
        let (Some(g), Some((key, value))) = (&group, line.split_once('=')) else {
            continue;
        };
        let key = key.trim();
        if key.contains('[') {
            continue;
        }
        out.entry(g.clone())
            .or_default()
            .insert(key.to_string(), unescape_key_file_value(value.trim_start()));
    }
    out
}

fn unescape_key_file_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => {}
        }
    }
    out
}

fn key_bool(kf: &KeyFile, group: &str, key: &str, default: bool) -> bool {
    match kf.get(group).and_then(|g| g.get(key)).map(|v| v.trim()) {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
    }
}

/// From `(uid, Data)` pairs of every source: the enabled address books (a source is
/// enabled if it and each of its ancestors is), system address book first, then by
/// display name.
pub(crate) fn address_books_from(sources: &[(String, String)]) -> Vec<EdsSourceInfo> {
    let parsed: HashMap<&str, KeyFile> = sources
        .iter()
        .map(|(uid, data)| (uid.as_str(), parse_key_file(data)))
        .collect();

    let enabled = |uid: &str| -> bool {
        let mut seen = HashSet::new();
        let mut current = uid;
        loop {
            let Some(kf) = parsed.get(current) else {
                return true;
            };
            if !key_bool(kf, "Data Source", "Enabled", true) {
                return false;
            }
            if !seen.insert(current) {
                return true; // a cycle: nothing disabled on it
            }
            match kf
                .get("Data Source")
                .and_then(|g| g.get("Parent"))
                .map(|p| p.trim())
            {
                Some(parent) if !parent.is_empty() => current = parent,
                _ => return true,
            }
        }
    };

    let mut books: Vec<EdsSourceInfo> = parsed
        .iter()
        .filter_map(|(uid, kf)| {
            let book = kf.get("Address Book")?;
            if !enabled(uid) {
                return None;
            }
            let display_name = kf
                .get("Data Source")
                .and_then(|g| g.get("DisplayName"))
                .cloned()
                .unwrap_or_else(|| uid.to_string());
            Some(EdsSourceInfo {
                uid: uid.to_string(),
                display_name,
                backend: book.get("BackendName").cloned().unwrap_or_default(),
            })
        })
        .collect();
    books.sort_by(|a, b| {
        (a.uid != SYSTEM_ADDRESS_BOOK)
            .cmp(&(b.uid != SYSTEM_ADDRESS_BOOK))
            .then_with(|| {
                a.display_name
                    .to_lowercase()
                    .cmp(&b.display_name.to_lowercase())
            })
            .then_with(|| a.uid.cmp(&b.uid))
    });
    books
}

/// Every source's `(UID, Data)` from the registry's `GetManagedObjects`.
pub(crate) async fn all_sources(
    conn: &Connection,
    sources_name: &str,
) -> zbus::Result<Vec<(String, String)>> {
    let om = ObjectManagerProxy::builder(conn)
        .destination(sources_name.to_string())?
        .path(SOURCE_MANAGER_PATH)?
        .build()
        .await?;
    let objects = om.get_managed_objects().await?;
    let mut out = Vec::new();
    for (_path, ifaces) in objects {
        let Some(props) = ifaces
            .iter()
            .find(|(name, _)| name.as_str() == SOURCE_IFACE)
            .map(|(_, p)| p)
        else {
            continue;
        };
        let get = |key: &str| {
            props
                .get(key)
                .and_then(|v| <&str>::try_from(&**v).ok())
                .map(str::to_string)
        };
        if let (Some(uid), Some(data)) = (get("UID"), get("Data")) {
            out.push((uid, data));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_versions() {
        let s = pick_services([
            "org.freedesktop.DBus",
            "org.gnome.evolution.dataserver.Sources5",
            "org.gnome.evolution.dataserver.Sources12",
            "org.gnome.evolution.dataserver.AddressBook10",
            "org.gnome.evolution.dataserver.AddressBook9",
            "org.gnome.evolution.dataserver.AddressBookFactory",
            "org.gnome.evolution.dataserver.Calendar8",
            "org.gnome.evolution.dataserver.Calendar",
            "org.gnome.evolution.dataserver.UserPrompter0",
            ":1.42",
        ]);
        assert_eq!(
            s.sources.as_deref(),
            Some("org.gnome.evolution.dataserver.Sources12")
        );
        assert_eq!(
            s.address_book.as_deref(),
            Some("org.gnome.evolution.dataserver.AddressBook10")
        );
        assert_eq!(
            s.calendar.as_deref(),
            Some("org.gnome.evolution.dataserver.Calendar8")
        );
        assert_eq!(
            pick_services(["org.freedesktop.DBus"]),
            EdsServices::default()
        );
    }

    #[test]
    fn enabled_books_sorted() {
        let src = |name: &str, enabled: bool, parent: &str, book: Option<&str>| {
            let mut d = format!("[Data Source]\nDisplayName={name}\nDisplayName[de]=X\nEnabled={enabled}\nParent={parent}\n");
            if let Some(b) = book {
                d.push_str(&format!("\n[Address Book]\nBackendName={b}\n"));
            }
            d
        };
        let sources = vec![
            (
                "local-stub".to_string(),
                src("On This Computer", true, "", None),
            ),
            (
                "zz".to_string(),
                src("Alpha\\sbook", true, "local-stub", Some("local")),
            ),
            (
                "system-address-book".to_string(),
                src("Personal", true, "local-stub", Some("local")),
            ),
            ("coll".to_string(), src("Account", false, "", None)),
            (
                "dav".to_string(),
                src("Work", true, "coll", Some("carddav")),
            ),
            (
                "off".to_string(),
                src("Off", false, "local-stub", Some("local")),
            ),
            (
                "cal".to_string(),
                "[Data Source]\nDisplayName=Cal\n[Calendar]\nBackendName=local\n".to_string(),
            ),
            (
                "orphan".to_string(),
                src("Orphan", true, "missing-parent", Some("ldap")),
            ),
        ];
        let books = address_books_from(&sources);
        let uids: Vec<&str> = books.iter().map(|b| b.uid.as_str()).collect();
        assert_eq!(uids, vec!["system-address-book", "zz", "orphan"]);
        assert_eq!(books[1].display_name, "Alpha book");
        assert_eq!(books[2].backend, "ldap");
    }
}
