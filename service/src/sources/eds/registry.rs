//! Finding EDS on the bus (its versioned service names) and its address-book, calendar,
//! task-list and memo-list sources (the source registry,
//! `org.gnome.evolution.dataserver.Sources<N>`).

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
/// Backends that generate read-only data from elsewhere (`contacts`: the birthdays and
/// anniversaries calendar built from the address books; `weather`): never backed up.
pub const GENERATED_BACKENDS: &[&str] = &["contacts", "weather"];

/// The kinds of EDS data sources imsync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdsSourceKind {
    AddressBook,
    /// Events (`VEVENT`), data class calendar.
    Calendar,
    /// To-dos (`VTODO`), data class tasks.
    TaskList,
    /// Memos (`VJOURNAL`), data class notes.
    MemoList,
}

impl EdsSourceKind {
    /// The key-file group that marks a source of this kind.
    pub fn group(self) -> &'static str {
        match self {
            EdsSourceKind::AddressBook => "Address Book",
            EdsSourceKind::Calendar => "Calendar",
            EdsSourceKind::TaskList => "Task List",
            EdsSourceKind::MemoList => "Memo List",
        }
    }

    /// The UID of the built-in personal source of this kind.
    pub fn system_uid(self) -> &'static str {
        match self {
            EdsSourceKind::AddressBook => SYSTEM_ADDRESS_BOOK,
            EdsSourceKind::Calendar => "system-calendar",
            EdsSourceKind::TaskList => "system-task-list",
            EdsSourceKind::MemoList => "system-memo-list",
        }
    }

    /// The data class of the items.
    pub fn class(self) -> crate::class::DataClass {
        use crate::class::DataClass;
        match self {
            EdsSourceKind::AddressBook => DataClass::Contacts,
            EdsSourceKind::Calendar => DataClass::Calendar,
            EdsSourceKind::TaskList => DataClass::Tasks,
            EdsSourceKind::MemoList => DataClass::Notes,
        }
    }

    /// The kind of source holding `class`, if EDS has one.
    pub fn for_class(class: crate::class::DataClass) -> Option<EdsSourceKind> {
        use crate::class::DataClass;
        match class {
            DataClass::Contacts => Some(EdsSourceKind::AddressBook),
            DataClass::Calendar => Some(EdsSourceKind::Calendar),
            DataClass::Tasks => Some(EdsSourceKind::TaskList),
            DataClass::Notes => Some(EdsSourceKind::MemoList),
            DataClass::Sms | DataClass::Roster => None,
        }
    }

    /// For people: `address book`, `calendar`, `task list`, `memo list`.
    pub fn noun(self) -> &'static str {
        match self {
            EdsSourceKind::AddressBook => "address book",
            EdsSourceKind::Calendar => "calendar",
            EdsSourceKind::TaskList => "task list",
            EdsSourceKind::MemoList => "memo list",
        }
    }
}

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

/// An enabled source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdsSourceInfo {
    pub kind: EdsSourceKind,
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

/// From `(uid, Data)` pairs of every source: the enabled sources of `kind` (a source is
/// enabled if it and each of its ancestors is) that hold user data (not a
/// [`GENERATED_BACKENDS`] backend), the system source first, then by display name.
pub(crate) fn sources_from(
    sources: &[(String, String)],
    kind: EdsSourceKind,
) -> Vec<EdsSourceInfo> {
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
            let book = kf.get(kind.group())?;
            let backend = book.get("BackendName").cloned().unwrap_or_default();
            if !enabled(uid) || GENERATED_BACKENDS.contains(&backend.as_str()) {
                return None;
            }
            let display_name = kf
                .get("Data Source")
                .and_then(|g| g.get("DisplayName"))
                .cloned()
                .unwrap_or_else(|| uid.to_string());
            Some(EdsSourceInfo {
                kind,
                uid: uid.to_string(),
                display_name,
                backend,
            })
        })
        .collect();
    let system = kind.system_uid();
    books.sort_by(|a, b| {
        (a.uid != system)
            .cmp(&(b.uid != system))
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
        let books = sources_from(&sources, EdsSourceKind::AddressBook);
        let uids: Vec<&str> = books.iter().map(|b| b.uid.as_str()).collect();
        assert_eq!(uids, vec!["system-address-book", "zz", "orphan"]);
        assert_eq!(books[1].display_name, "Alpha book");
        assert_eq!(books[2].backend, "ldap");
    }

    #[test]
    fn calendar_kinds_skip_generated_sources() {
        let src = |name: &str, group: &str, backend: &str, enabled: bool| {
            format!("[Data Source]\nDisplayName={name}\nEnabled={enabled}\nParent=local-stub\n\n[{group}]\nBackendName={backend}\n")
        };
        let sources = vec![
            (
                "local-stub".to_string(),
                "[Data Source]\nDisplayName=On This Computer\nEnabled=true\n".to_string(),
            ),
            (
                "birthdays".to_string(),
                src("Birthdays & Anniversaries", "Calendar", "contacts", true),
            ),
            (
                "weather".to_string(),
                src("Weather", "Calendar", "weather", true),
            ),
            (
                "system-calendar".to_string(),
                src("Personal", "Calendar", "local", true),
            ),
            (
                "work-cal".to_string(),
                src("Arbeit", "Calendar", "caldav", true),
            ),
            (
                "off-cal".to_string(),
                src("Old", "Calendar", "local", false),
            ),
            (
                "system-task-list".to_string(),
                src("Personal", "Task List", "local", true),
            ),
            (
                "system-memo-list".to_string(),
                src("Personal", "Memo List", "local", true),
            ),
            (
                "notes2".to_string(),
                src("Notizen", "Memo List", "local", true),
            ),
        ];
        let uids = |k| {
            sources_from(&sources, k)
                .into_iter()
                .map(|i| i.uid)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            uids(EdsSourceKind::Calendar),
            vec!["system-calendar", "work-cal"]
        );
        assert_eq!(uids(EdsSourceKind::TaskList), vec!["system-task-list"]);
        assert_eq!(
            uids(EdsSourceKind::MemoList),
            vec!["system-memo-list", "notes2"]
        );
        assert!(uids(EdsSourceKind::AddressBook).is_empty());
        assert_eq!(
            sources_from(&sources, EdsSourceKind::MemoList)[1].kind,
            EdsSourceKind::MemoList
        );
    }
}
