//! `/org/imsync/Sync1/Account/N`, interface `org.imsync.Account1`: one object per IM account
//! (N = the account's row id in the state database), announced through
//! `org.freedesktop.DBus.ObjectManager` on `/org/imsync/Sync1`.
//!
//! Creating and changing accounts goes through [`save_account`] whichever method asked
//! (`Sync1.SetAccount`, `Account1.Update`, `Sync1.ImportProvisioning`), so the rules are the
//! same everywhere: validation before anything is stored, the password into the secret store,
//! `PropertiesChanged` for what changed, `AccountChanged` + a log line when the server or the
//! credentials of an existing account change, and the first backup of a new account with
//! `auto_backup`.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::convert::{self, Dict};
use super::{parse_classes, start_job, Error, Shared, Sync1, OBJECT_PATH};
use crate::engine::restore::RestoreMode;
use crate::engine::{BackupOptions, JobKind};
use crate::profile::{Account, AccountUpdate, Password};

pub const ACCOUNT_INTERFACE: &str = "org.imsync.Account1";

pub fn account_path(id: i64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{OBJECT_PATH}/Account/{id}")).expect("valid object path")
}

/// What [`save_account`] did.
pub struct Saved {
    pub id: i64,
    pub name: String,
    pub created: bool,
    /// The backup started because of `auto_backup`.
    pub job: Option<OwnedObjectPath>,
}

/// Create or update an account. `target`: the account object the call came through
/// (`Account1.Update`: the identity cannot change); `None`: the account named by the update's
/// `protocol` + `im_id`, else the default account. Nothing is stored if the update is refused.
pub async fn save_account(
    shared: &Arc<Shared>,
    conn: &zbus::Connection,
    server: &zbus::ObjectServer,
    target: Option<i64>,
    update: AccountUpdate,
) -> Result<Saved, Error> {
    let existing = match (target, update.account_name()) {
        (Some(id), named) => {
            let a = shared
                .store(|s| s.account_by_id(id))?
                .ok_or_else(|| Error::NoSuchAccount(format!("account {id} was removed")))?;
            if named.is_some_and(|n| n != a.name()) {
                return Err(Error::InvalidArgs(
                    "invalid value for 'protocol': Update cannot change the account's identity (protocol, im_id); \
                     create another account with SetAccount"
                        .into(),
                ));
            }
            Some(a)
        }
        (None, Some(name)) => shared.store(|s| s.account(&name))?,
        (None, None) => Some(shared.store(|s| s.default_account())?.ok_or_else(|| {
            Error::InvalidArgs(
                "invalid value for 'protocol': no account exists yet; give 'protocol' and 'im_id'".into(),
            )
        })?),
    };
    let created = existing.is_none();
    let mut account = existing.clone().unwrap_or_else(|| {
        Account::new(update.protocol.as_deref().unwrap_or_default(), update.im_id.as_deref().unwrap_or_default())
    });
    let name = account.name();
    if update.is_default == Some(false) && existing.as_ref().is_some_and(|a| a.is_default) {
        return Err(Error::InvalidArgs(format!(
            "invalid value for 'is_default': {name} is the default account and there is always one; \
             set is_default on another account instead"
        )));
    }
    account.apply(&update);
    let auto_backup = created && update.auto_backup == Some(true);
    if auto_backup && account.server_url.is_empty() {
        return Err(Error::InvalidArgs(
            "invalid value for 'auto_backup': the account has no server_url to back up to".into(),
        ));
    }
    let default_before = shared.store(|s| s.default_account())?.map(|a| a.name());

    if let Some(pw) = &update.password {
        shared.secrets.store(conn, &name, &Password::new(pw.clone())).await?;
    }
    let id = shared.store(|s| {
        let id = s.save_account(&account)?;
        if update.is_default == Some(true) {
            s.set_default(&name)?;
        }
        Ok(id)
    })?;
    let after =
        shared.store(|s| s.account_by_id(id))?.ok_or_else(|| Error::Internal("the saved account is gone".into()))?;
    let default_after = shared.store(|s| s.default_account())?.map(|a| a.name());

    if created {
        server.at(account_path(id), Account1 { shared: Arc::clone(shared), id }).await?;
        tracing::info!(account = %name, id, server_url = %after.server_url, "account created");
    } else if let Some(before) = &existing {
        let credentials_changed = before.server_url != after.server_url
            || before.username != after.username
            || before.server_cert_sha256 != after.server_cert_sha256
            || update.password.is_some();
        if credentials_changed {
            // Never silently: a chat app (or anything of this user) pointing the account at
            // another server is logged and announced; no data goes there before the next
            // explicit Backup().
            tracing::warn!(account = %name, old_server_url = %before.server_url, server_url = %after.server_url,
                old_username = %before.username, username = %after.username,
                pin_changed = before.server_cert_sha256 != after.server_cert_sha256,
                password_changed = update.password.is_some(), "account server or credentials changed");
            Sync1::account_changed(&SignalEmitter::new(conn, OBJECT_PATH)?, &name).await?;
        } else {
            tracing::info!(account = %name, "account settings updated");
        }
        emit_changes(server, id, before, &after).await;
    }
    if default_before != default_after {
        tracing::info!(account = ?default_after, previous = ?default_before, "default account changed");
        for n in [default_before, default_after].into_iter().flatten() {
            if let Some(other) = shared.store(|s| s.account_id(&n))? {
                if !(created && other == id) {
                    emit_is_default(server, other).await;
                }
            }
        }
    }
    let job = if auto_backup {
        tracing::info!(account = %name, "auto_backup: first backup of the new account (a slow sync: nothing on the server is deleted)");
        Some(start_job(shared, server, JobKind::Backup(BackupOptions::default()), Some(&name), None).await?)
    } else {
        None
    };
    Ok(Saved { id, name, created, job })
}

/// PropertiesChanged for what differs between `before` and `after`.
async fn emit_changes(server: &zbus::ObjectServer, id: i64, before: &Account, after: &Account) {
    let res: zbus::Result<()> = async {
        let iface = server.interface::<_, Account1>(account_path(id)).await?;
        let a = iface.get().await;
        let e = iface.signal_emitter();
        if before.display_name != after.display_name {
            a.display_name_changed(e).await?;
        }
        if before.server_url != after.server_url {
            a.server_url_changed(e).await?;
        }
        if before.username != after.username {
            a.username_changed(e).await?;
        }
        if before.server_cert_sha256 != after.server_cert_sha256 {
            a.server_cert_sha256_changed(e).await?;
        }
        if before.classes != after.classes {
            a.classes_changed(e).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(id, error = %e, "cannot announce the account's changes");
    }
}

async fn emit_is_default(server: &zbus::ObjectServer, id: i64) {
    if let Ok(iface) = server.interface::<_, Account1>(account_path(id)).await {
        let _ = iface.get().await.is_default_changed(iface.signal_emitter()).await;
    }
}

/// `DisplayName` changed behind the bus's back (a roster restore brought the backed-up one).
pub async fn emit_display_name(server: &zbus::ObjectServer, id: i64) {
    if let Ok(iface) = server.interface::<_, Account1>(account_path(id)).await {
        let _ = iface.get().await.display_name_changed(iface.signal_emitter()).await;
    }
}

/// Forget an account: its settings, sync state, roster and password; its object leaves the bus.
pub async fn remove_account(
    shared: &Arc<Shared>,
    conn: &zbus::Connection,
    server: &zbus::ObjectServer,
    id: i64,
) -> Result<(), Error> {
    let account = shared
        .store(|s| s.account_by_id(id))?
        .ok_or_else(|| Error::NoSuchAccount(format!("account {id} was removed")))?;
    let name = account.name();
    if let Some(j) = shared.engine.jobs().iter().find(|j| j.is_running() && j.account == name) {
        return Err(Error::Busy(format!("a {} of {name} is running ({}); cancel it first", j.kind.as_str(), j.id)));
    }
    shared.secrets.remove(conn, &name).await?;
    let default_before = shared.store(|s| s.default_account())?.map(|a| a.name());
    shared.store(|s| s.remove_account(&name))?;
    let default_after = shared.store(|s| s.default_account())?;
    server.remove::<Account1, _>(account_path(id)).await?;
    tracing::info!(account = %name, id, "account removed with its settings, sync state, roster and password");
    if let Some(new_default) = default_after.filter(|d| Some(d.name()) != default_before) {
        if let Some(nid) = shared.store(|s| s.account_id(&new_default.name()))? {
            emit_is_default(server, nid).await;
        }
    }
    Ok(())
}

/// Put an object on the bus for every stored account (at start).
pub async fn export_all(shared: &Arc<Shared>, server: &zbus::ObjectServer) -> Result<(), Error> {
    for (id, _) in shared.store(|s| s.accounts_with_ids())? {
        server.at(account_path(id), Account1 { shared: Arc::clone(shared), id }).await?;
    }
    Ok(())
}

/// The roster of `name` as D-Bus dictionaries.
pub fn roster_to_dbus(shared: &Shared, name: &str) -> Result<Vec<Dict>, Error> {
    let entries = shared.store(|s| s.roster(name))?;
    Ok(entries.iter().map(convert::roster_entry_to_dbus).collect())
}

/// Replace the roster of `name` with `entries` (validated first).
pub fn set_roster(shared: &Shared, name: &str, entries: &[Dict]) -> Result<(), Error> {
    let parsed: Vec<_> = entries.iter().map(convert::settings_from_dbus).collect();
    let entries = crate::profile::roster::parse_entries(&parsed)?;
    let (added, changed, removed) = shared.store(|s| s.set_roster(name, &entries))?;
    tracing::info!(account = %name, entries = entries.len(), added, changed, removed, "roster set");
    Ok(())
}

pub struct Account1 {
    shared: Arc<Shared>,
    id: i64,
}

impl Account1 {
    fn account(&self) -> zbus::fdo::Result<Account> {
        self.shared
            .store(|s| s.account_by_id(self.id))
            .map_err(|e| zbus::fdo::Error::Failed(format!("{e:?}")))?
            .ok_or_else(|| zbus::fdo::Error::UnknownObject(format!("account {} was removed", self.id)))
    }

    fn account_name(&self) -> Result<String, Error> {
        Ok(self
            .shared
            .store(|s| s.account_by_id(self.id))?
            .ok_or_else(|| Error::NoSuchAccount(format!("account {} was removed", self.id)))?
            .name())
    }
}

#[zbus::interface(name = "org.imsync.Account1")]
impl Account1 {
    /// The IM protocol (`xmpp`, `matrix`, ...).
    #[zbus(property)]
    async fn protocol(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.protocol)
    }

    /// The user's IM id in that protocol.
    #[zbus(property)]
    async fn im_id(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.im_id)
    }

    /// The account's name in the API: `<protocol>:<im_id>`.
    #[zbus(property)]
    async fn name(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.name())
    }

    #[zbus(property)]
    async fn display_name(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.display_name)
    }

    #[zbus(property)]
    async fn server_url(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.server_url)
    }

    #[zbus(property)]
    async fn username(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.username)
    }

    /// The pinned SHA-256 of the server's certificate (hex), empty if none.
    #[zbus(property)]
    async fn server_cert_sha256(&self) -> zbus::fdo::Result<String> {
        Ok(self.account()?.server_cert_sha256)
    }

    /// Per class C: `C.uri` (s), `C.mode` (s), `C.enabled` (b).
    #[zbus(property)]
    async fn classes(&self) -> zbus::fdo::Result<Dict> {
        Ok(convert::classes_to_dbus(&self.account()?))
    }

    #[zbus(property)]
    async fn is_default(&self) -> zbus::fdo::Result<bool> {
        Ok(self.account()?.is_default)
    }

    /// Every setting as in `Sync1.GetAccount` (with `has_password`, never the password).
    #[zbus(out_args("settings"))]
    async fn get_settings(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<Dict, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let account = self
            .shared
            .store(|s| s.account_by_id(self.id))?
            .ok_or_else(|| Error::NoSuchAccount(format!("account {} was removed", self.id)))?;
        let has_password = self.shared.secrets.lookup(conn, &account.name()).await?.is_some();
        Ok(convert::account_to_dbus(&account, has_password))
    }

    /// Change the account: the keys of `Sync1.SetAccount` except the identity (`protocol` and
    /// `im_id`, if given, must be the account's own).
    async fn update(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        settings: Dict,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let update = AccountUpdate::parse(&convert::settings_from_dbus(&settings))?;
        save_account(&self.shared, conn, server, Some(self.id), update).await?;
        Ok(())
    }

    /// Forget the account: settings, sync state, roster and password. The data on the server
    /// stays. `org.imsync.Error.Busy` while one of its jobs runs.
    async fn remove(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        remove_account(&self.shared, conn, server, self.id).await
    }

    /// Back up every enabled class of this account; returns the job at once (the running one
    /// if a backup of the account runs).
    #[zbus(out_args("job"))]
    async fn backup(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let name = self.account_name()?;
        start_job(&self.shared, server, JobKind::Backup(BackupOptions::default()), Some(&name), None).await
    }

    /// Bring the server's items of `classes` (every enabled class if empty) back onto the
    /// phone, merging; returns the job at once.
    #[zbus(out_args("job"))]
    async fn restore(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        classes: Vec<String>,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        let name = self.account_name()?;
        let classes = if classes.is_empty() { None } else { Some(parse_classes("classes", &Value::from(classes))?) };
        start_job(&self.shared, server, JobKind::Restore(RestoreMode::Merge), Some(&name), classes).await
    }

    /// Replace the account's friend list (`im_id` s, `name` s, `groups` as, `subscription` s).
    async fn set_roster(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        entries: Vec<Dict>,
    ) -> Result<(), Error> {
        self.shared.check_caller(conn, &hdr).await?;
        set_roster(&self.shared, &self.account_name()?, &entries)
    }

    /// The account's friend list, ordered by IM id.
    #[zbus(out_args("entries"))]
    async fn get_roster(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<Vec<Dict>, Error> {
        self.shared.check_caller(conn, &hdr).await?;
        roster_to_dbus(&self.shared, &self.account_name()?)
    }
}

/// The `a{sv}` of `ImportProvisioningWith`'s options.
pub fn provisioning_options(options: &Dict) -> Result<HashMap<String, crate::profile::SettingValue>, Error> {
    let mut out = HashMap::new();
    for (k, v) in convert::settings_from_dbus(options) {
        match k.as_str() {
            "auto_backup" | "display_name" | "is_default" => {
                out.insert(k, v);
            }
            _ => {
                return Err(Error::InvalidArgs(format!(
                    "invalid value for '{k}': unknown option (known: auto_backup, display_name, is_default)"
                )))
            }
        }
    }
    Ok(out)
}
