//! zbus proxies for the ModemManager 1.x D-Bus interfaces imsync uses.

use std::collections::HashMap;

use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

pub const SERVICE: &str = "org.freedesktop.ModemManager1";
pub const ROOT_PATH: &str = "/org/freedesktop/ModemManager1";
pub const MODEM_IFACE: &str = "org.freedesktop.ModemManager1.Modem";
pub const MESSAGING_IFACE: &str = "org.freedesktop.ModemManager1.Modem.Messaging";
pub const SMS_IFACE: &str = "org.freedesktop.ModemManager1.Sms";

/// `org.freedesktop.ModemManager1.Modem` (only what imsync reads).
#[zbus::proxy(
    interface = "org.freedesktop.ModemManager1.Modem",
    default_service = "org.freedesktop.ModemManager1",
    gen_blocking = false
)]
pub trait Modem {
    /// -1 failed, 0 unknown, 1 initializing, 2 locked, 3 disabled, 4 disabling, 5 enabling,
    /// 6 enabled, 7 searching, 8 registered, 9 disconnecting, 10 connecting, 11 connected.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<i32>;
}

/// `org.freedesktop.ModemManager1.Modem.Messaging`.
#[zbus::proxy(
    interface = "org.freedesktop.ModemManager1.Modem.Messaging",
    default_service = "org.freedesktop.ModemManager1",
    gen_blocking = false
)]
pub trait Messaging {
    /// Newest first. Fails with `…Error.Core.WrongState` while the modem is not enabled.
    fn list(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// Allowed keys: number, text, data, smsc, validity, class, delivery-report-request,
    /// teleservice-id, service-category. Always creates an SMS-SUBMIT.
    fn create(&self, properties: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn delete(&self, path: &ObjectPath<'_>) -> zbus::Result<()>;
}

/// `org.freedesktop.ModemManager1.Sms`.
#[zbus::proxy(
    interface = "org.freedesktop.ModemManager1.Sms",
    default_service = "org.freedesktop.ModemManager1",
    gen_blocking = false
)]
pub trait Sms {
    /// 0 = the modem's default storage, 1 SM, 2 ME, 3 MT, …
    fn store(&self, storage: u32) -> zbus::Result<()>;
}
