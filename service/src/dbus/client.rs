//! Client-side proxies of the service's interfaces (used by the `imsync` CLI).

use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use std::collections::HashMap;

pub type Dict = HashMap<String, OwnedValue>;

#[zbus::proxy(interface = "org.imsync.Sync1", default_service = "org.imsync.Sync1", default_path = "/org/imsync/Sync1")]
pub trait Sync1 {
    fn set_account(&self, settings: HashMap<&str, zbus::zvariant::Value<'_>>) -> zbus::Result<()>;
    fn get_account(&self) -> zbus::Result<Dict>;
    fn backup(&self) -> zbus::Result<OwnedObjectPath>;
    fn backup_with(&self, options: HashMap<&str, zbus::zvariant::Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn restore(&self, classes: &[&str]) -> zbus::Result<OwnedObjectPath>;
    fn restore_with(&self, options: HashMap<&str, zbus::zvariant::Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn get_history(&self, max: u32) -> zbus::Result<Vec<Dict>>;
    fn list_accounts(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    fn set_roster(&self, account: &str, entries: &[HashMap<&str, zbus::zvariant::Value<'_>>]) -> zbus::Result<()>;
    fn get_roster(&self, account: &str) -> zbus::Result<Vec<Dict>>;
    fn import_provisioning(&self, account: &str, document: &str) -> zbus::Result<()>;
    fn import_provisioning_with(
        &self,
        account: &str,
        document: &str,
        options: HashMap<&str, zbus::zvariant::Value<'_>>,
    ) -> zbus::Result<()>;
    #[zbus(property)]
    fn jobs(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    #[zbus(property)]
    fn last_backup(&self) -> zbus::Result<Dict>;
}

#[zbus::proxy(interface = "org.imsync.Job1", default_service = "org.imsync.Sync1")]
pub trait Job1 {
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn report(&self) -> zbus::Result<Dict>;
    #[zbus(property)]
    fn account(&self) -> zbus::Result<String>;
    fn cancel(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn progress(&self, class: String, done: u32, total: u32) -> zbus::Result<()>;
    #[zbus(signal)]
    fn finished(&self, state: String, report: Dict) -> zbus::Result<()>;
}

#[zbus::proxy(interface = "org.imsync.Account1", default_service = "org.imsync.Sync1")]
pub trait Account1 {
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn is_default(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn server_url(&self) -> zbus::Result<String>;
    fn remove(&self) -> zbus::Result<()>;
}
