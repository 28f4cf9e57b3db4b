//! ModemManager (`org.freedesktop.ModemManager1`, system bus) as the source of SMS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), imsync::sources::SourceError> {
//! use imsync::sources::{modemmanager::ModemManager, Source};
//! let mm = ModemManager::system().await?;          // Unavailable: no system bus / no MM
//! for mut sms in mm.open_all(ModemManager::DEFAULT_ENABLE_WAIT).await? {   // Unavailable: no modem
//!     let rev = sms.revision().await?;
//!     let items = sms.list().await?;
//! #   let _ = (rev, items);
//! }
//! # Ok(()) }
//! ```
//!
//! - Modems are found with `ObjectManager.GetManagedObjects` on `/org/freedesktop/ModemManager1`
//!   (only modem objects are in it); every modem with the `Modem.Messaging` interface is one
//!   source. `Modem/N` paths change when a modem reappears: a source is identified by the
//!   modem's `EquipmentIdentifier` (IMEI), and finds its modem again by it when the old
//!   path is gone.
//! - SMS can only be listed once the modem is enabled (State ≥ 6); opening waits a while for
//!   an initializing / enabling / disabled modem, and fails with
//!   [`SourceError::Unavailable`] if it does not get there. imsync never enables a modem.
//! - ModemManager absent from the bus, no system bus, or no modem: also
//!   [`SourceError::Unavailable`] — the engine reports the class as skipped.
//! - Local ids are content identities ([`crate::item::Sms::identity`], `~2`, `~3`… appended for
//!   identical messages), never `SMS/N` paths (those are renumbered on every start).
//! - Restores go through `Messaging.Create` + `Sms.Store`; see [`source::ModemSms`] and
//!   [`ledger`] for what ModemManager cannot preserve and how imsync keeps the identity.

pub mod convert;
pub mod ledger;
pub mod proxies;
mod source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

pub use source::ModemSms;

use crate::sources::SourceError;

/// One modem with messaging, as found on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemInfo {
    pub path: OwnedObjectPath,
    /// IMEI (or MEID/ESN); may be empty.
    pub equipment_id: String,
    /// ModemManager's own hash of the device; may be empty.
    pub device_id: String,
    pub manufacturer: String,
    pub model: String,
    /// `Modem.State` when found.
    pub state: i32,
}

impl ModemInfo {
    /// The source id: stable across ModemManager restarts and path changes.
    pub fn source_id(&self) -> String {
        let key = [&self.equipment_id, &self.device_id]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| self.path.to_string());
        format!("modemmanager:sms:{key}")
    }

    pub fn display_name(&self) -> String {
        let model = format!("{} {}", self.manufacturer.trim(), self.model.trim())
            .trim()
            .to_string();
        if model.is_empty() {
            "SMS on the modem".into()
        } else {
            format!("SMS on the modem ({model})")
        }
    }
}

pub(crate) fn state_name(state: i32) -> &'static str {
    match state {
        -1 => "failed",
        0 => "unknown",
        1 => "initializing",
        2 => "locked",
        3 => "disabled",
        4 => "disabling",
        5 => "enabling",
        6 => "enabled",
        7 => "searching",
        8 => "registered",
        9 => "disconnecting",
        10 => "connecting",
        11 => "connected",
        _ => "?",
    }
}

const ERR_PREFIX: &str = "org.freedesktop.ModemManager1.Error.";

/// The D-Bus error name and message of `e`, if it is a method error.
pub(crate) fn error_name(e: &zbus::Error) -> Option<(String, String)> {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            Some((name.to_string(), msg.clone().unwrap_or_default()))
        }
        zbus::Error::FDO(fdo) => Some((
            zbus::DBusError::name(&**fdo).to_string(),
            zbus::DBusError::description(&**fdo)
                .unwrap_or_default()
                .to_string(),
        )),
        _ => None,
    }
}

/// ModemManager or the object is gone (restart, modem removed).
pub(crate) fn is_gone(e: &zbus::Error) -> bool {
    matches!(error_name(e), Some((n, _)) if [
        "org.freedesktop.DBus.Error.UnknownMethod",
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownInterface",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.Disconnected",
    ].contains(&n.as_str()))
}

/// Polkit said no (`…Error.Core.Unauthorized`, or the bus refused the call).
pub(crate) fn is_unauthorized(e: &zbus::Error) -> bool {
    matches!(error_name(e), Some((n, _)) if n == "org.freedesktop.ModemManager1.Error.Core.Unauthorized"
        || n == "org.freedesktop.DBus.Error.AccessDenied"
        || n == "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
}

/// What to tell the user when polkit refuses a write.
pub(crate) const POLKIT_HINT: &str = "ModemManager refused to write messages: polkit denies the action \
     org.freedesktop.ModemManager1.Messaging to this session (allowed by default only to the active local \
     session). Run imsyncd in the phone's active session or install the polkit rule shipped with imsync \
     (50-imsync-modemmanager.rules)";

/// Maps a failed call of `what` to a [`SourceError`].
pub(crate) fn map_error(store: &str, what: &str, e: zbus::Error) -> SourceError {
    if is_unauthorized(&e) {
        return SourceError::Store {
            store: store.to_string(),
            detail: format!("{what}: {POLKIT_HINT} ({e})"),
        };
    }
    match error_name(&e) {
        Some((n, msg))
            if n == "org.freedesktop.DBus.Error.ServiceUnknown"
                || n == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            SourceError::Unavailable {
                service: "ModemManager".into(),
                detail: format!("{what}: {msg}"),
            }
        }
        Some((n, msg)) if n == format!("{ERR_PREFIX}Core.WrongState") => SourceError::Unavailable {
            service: "ModemManager".into(),
            detail: format!("{what}: the modem is not enabled ({msg})"),
        },
        Some((n, msg)) if is_gone(&e) => SourceError::Unavailable {
            service: "ModemManager".into(),
            detail: format!("{what}: the modem went away ({n}: {msg})"),
        },
        Some((n, msg)) => SourceError::Store {
            store: store.to_string(),
            detail: format!("{what} failed: {msg} ({n})"),
        },
        None => SourceError::DBus(e),
    }
}

fn prop<T: TryFrom<OwnedValue>>(
    props: Option<&HashMap<String, OwnedValue>>,
    name: &str,
) -> Option<T> {
    props?
        .get(name)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| T::try_from(v).ok())
}

/// Where the restore ledger lives by default: `$XDG_DATA_HOME/imsync` (else
/// `~/.local/share/imsync`), the daemon's default state directory.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("imsync"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/imsync"))
}

/// ModemManager on one connection (the system bus on a phone).
#[derive(Debug, Clone)]
pub struct ModemManager {
    conn: Connection,
    state_dir: Option<PathBuf>,
}

impl ModemManager {
    /// How long opening waits for a modem that is not enabled yet.
    pub const DEFAULT_ENABLE_WAIT: Duration = Duration::from_secs(10);

    /// ModemManager on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured), restore ledger
    /// in [`default_state_dir`].
    pub async fn system() -> Result<ModemManager, SourceError> {
        let conn = Connection::system()
            .await
            .map_err(|e| SourceError::Unavailable {
                service: "ModemManager".into(),
                detail: format!("cannot connect to the system bus: {e}"),
            })?;
        Ok(ModemManager::new(conn, default_state_dir()))
    }

    /// ModemManager on `conn`; the restore ledger is kept in `state_dir` (`None`: in memory).
    pub fn new(conn: Connection, state_dir: Option<PathBuf>) -> ModemManager {
        ModemManager { conn, state_dir }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Every modem with the Messaging interface. [`SourceError::Unavailable`] if
    /// ModemManager is not on the bus (and cannot be activated).
    pub async fn modems(&self) -> Result<Vec<ModemInfo>, SourceError> {
        let om = zbus::fdo::ObjectManagerProxy::builder(&self.conn)
            .destination(proxies::SERVICE)?
            .path(proxies::ROOT_PATH)?
            .build()
            .await?;
        let objects = om
            .get_managed_objects()
            .await
            .map_err(|e| map_error("ModemManager", "listing the modems", e.into()))?;
        let mut out = Vec::new();
        for (path, ifaces) in objects {
            let has = |name: &str| ifaces.keys().any(|k| k.as_str() == name);
            if !has(proxies::MESSAGING_IFACE) {
                continue;
            }
            let modem = ifaces
                .iter()
                .find(|(k, _)| k.as_str() == proxies::MODEM_IFACE)
                .map(|(_, v)| v);
            out.push(ModemInfo {
                path,
                equipment_id: prop(modem, "EquipmentIdentifier").unwrap_or_default(),
                device_id: prop(modem, "DeviceIdentifier").unwrap_or_default(),
                manufacturer: prop(modem, "Manufacturer").unwrap_or_default(),
                model: prop(modem, "Model").unwrap_or_default(),
                state: prop(modem, "State").unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        Ok(out)
    }

    /// Waits up to `wait` until the modem at `path` is enabled (State ≥ 6). Fails at once
    /// for a failed or SIM-locked modem.
    pub async fn wait_enabled(
        &self,
        path: &OwnedObjectPath,
        wait: Duration,
    ) -> Result<(), SourceError> {
        let proxy = proxies::ModemProxy::builder(&self.conn)
            .path(path.clone())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let t0 = Instant::now();
        loop {
            let state = proxy
                .state()
                .await
                .map_err(|e| map_error("ModemManager", "reading the modem state", e))?;
            if state >= 6 {
                return Ok(());
            }
            if state == -1 || state == 2 || t0.elapsed() >= wait {
                let why = match state {
                    2 => "the SIM is locked".to_string(),
                    -1 => "the modem failed".to_string(),
                    s => format!("the modem is {} after {}s", state_name(s), wait.as_secs()),
                };
                return Err(SourceError::Unavailable {
                    service: "ModemManager".into(),
                    detail: format!("SMS cannot be read: {why} (messages can only be listed from an enabled modem)"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Opens the SMS store of one modem, waiting up to `wait` for it to be enabled.
    pub async fn open(&self, info: &ModemInfo, wait: Duration) -> Result<ModemSms, SourceError> {
        self.wait_enabled(&info.path, wait).await?;
        let ledger_path = self
            .state_dir
            .as_ref()
            .map(|d| d.join("modemmanager-sms-restored.json"));
        ModemSms::open(
            self.clone(),
            info.clone(),
            ledger::Ledger::load(ledger_path),
        )
        .await
    }

    /// Opens every modem's SMS store. [`SourceError::Unavailable`] when there is no modem
    /// with messaging (never an empty list: an absent modem must not look like an empty one).
    pub async fn open_all(&self, wait: Duration) -> Result<Vec<ModemSms>, SourceError> {
        let modems = self.modems().await?;
        if modems.is_empty() {
            return Err(SourceError::Unavailable {
                service: "ModemManager".into(),
                detail: "no modem with messaging support is present".into(),
            });
        }
        let mut out = Vec::new();
        for m in &modems {
            out.push(self.open(m, wait).await?);
        }
        Ok(out)
    }

    /// The modem with the same source id as `info` (after a ModemManager restart or a modem
    /// reset its path changes).
    pub(crate) async fn find_again(&self, info: &ModemInfo) -> Result<ModemInfo, SourceError> {
        let id = info.source_id();
        self.modems()
            .await?
            .into_iter()
            .find(|m| m.source_id() == id)
            .ok_or_else(|| SourceError::Unavailable {
                service: "ModemManager".into(),
                detail: format!("the modem {} is gone", info.display_name()),
            })
    }
}

/// `open_sources(Sms)`: ModemManager on the system bus; the restore ledger in `state_dir`
/// (the daemon's state directory; `None`: [`default_state_dir`]).
pub async fn open_sources(state_dir: Option<PathBuf>) -> Result<Vec<Box<dyn crate::sources::Source>>, SourceError> {
    let mut mm = ModemManager::system().await?;
    if state_dir.is_some() {
        mm.state_dir = state_dir;
    }
    Ok(mm
        .open_all(ModemManager::DEFAULT_ENABLE_WAIT)
        .await?
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn crate::sources::Source>)
        .collect())
}

#[cfg(test)]
mod tests;
