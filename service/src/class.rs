//! The data classes imsync backs up, and the sync modes a class can use.

use std::fmt;
use std::str::FromStr;

/// A kind of personal data. Each class has its own remote database on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    Contacts,
    Calendar,
    Tasks,
    Notes,
    Sms,
    Roster,
}

impl DataClass {
    pub const ALL: [DataClass; 6] = [
        DataClass::Contacts,
        DataClass::Calendar,
        DataClass::Tasks,
        DataClass::Notes,
        DataClass::Sms,
        DataClass::Roster,
    ];

    /// The name used in the D-Bus API, the CLI and the store (`contacts`, `calendar`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Contacts => "contacts",
            DataClass::Calendar => "calendar",
            DataClass::Tasks => "tasks",
            DataClass::Notes => "notes",
            DataClass::Sms => "sms",
            DataClass::Roster => "roster",
        }
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown data class '{s}' (known: contacts, calendar, tasks, notes, sms, roster)"))
    }
}

/// The sync mode configured for a class (the user's choice), named as in the D-Bus API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncMode {
    TwoWay,
    Slow,
    OneWayFromClient,
    RefreshFromClient,
    OneWayFromServer,
    RefreshFromServer,
}

impl SyncMode {
    pub const ALL: [SyncMode; 6] = [
        SyncMode::TwoWay,
        SyncMode::Slow,
        SyncMode::OneWayFromClient,
        SyncMode::RefreshFromClient,
        SyncMode::OneWayFromServer,
        SyncMode::RefreshFromServer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::TwoWay => "two-way",
            SyncMode::Slow => "slow",
            SyncMode::OneWayFromClient => "one-way-from-client",
            SyncMode::RefreshFromClient => "refresh-from-client",
            SyncMode::OneWayFromServer => "one-way-from-server",
            SyncMode::RefreshFromServer => "refresh-from-server",
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyncMode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!(
                "unknown sync mode '{s}' (known: two-way, slow, one-way-from-client, refresh-from-client, one-way-from-server, refresh-from-server)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in DataClass::ALL {
            assert_eq!(c.as_str().parse::<DataClass>().unwrap(), c);
        }
        for m in SyncMode::ALL {
            assert_eq!(m.as_str().parse::<SyncMode>().unwrap(), m);
        }
        assert!("phonebook".parse::<DataClass>().is_err());
        assert!("oneway".parse::<SyncMode>().is_err());
    }
}
