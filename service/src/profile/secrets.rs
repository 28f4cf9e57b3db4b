//! Passwords: in the Secret Service (one item per account, attributes
//! `application=imsync`, `account=<protocol>:<im_id>`) when a provider is on the session bus,
//! otherwise in a file readable only by the user (`$XDG_DATA_HOME/imsync/secrets/`), with a
//! warning in the log. A password never reaches the log or the state database.
//!
//! The fallback files hold the password encrypted (AES-256-GCM) with a random key kept in
//! its own 0600 file beside them. That key is as readable as the files, so this is no
//! protection against processes of the same user (only the Secret Service gives that); it
//! keeps the password out of plain sight: no clear text in a state file, a copy of the
//! state directory or a grep over it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::ProfileError;

/// A password. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// Where a password was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretBackend {
    SecretService,
    File,
}

const PROVIDER: &str = "org.freedesktop.secrets";
/// First line of a fallback file: format and version.
const FILE_MAGIC: &str = "imsync-secret-v1:";
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Secrets {
    fallback_dir: PathBuf,
}

impl Secrets {
    pub fn new(fallback_dir: PathBuf) -> Self {
        Secrets { fallback_dir }
    }

    fn attributes(account: &str) -> HashMap<&str, &str> {
        HashMap::from([("application", "imsync"), ("account", account)])
    }

    /// Whether a Secret Service provider is running or can be started on the session bus.
    async fn provider_available(bus: &zbus::Connection) -> bool {
        let Ok(dbus) = zbus::fdo::DBusProxy::new(bus).await else { return false };
        let Ok(name) = zbus::names::BusName::try_from(PROVIDER) else { return false };
        if dbus.name_has_owner(name).await.unwrap_or(false) {
            return true;
        }
        dbus.list_activatable_names().await.map(|names| names.iter().any(|n| n.as_str() == PROVIDER)).unwrap_or(false)
    }

    /// Store the password of `account`, preferring the Secret Service.
    pub async fn store(&self, bus: &zbus::Connection, account: &str, password: &Password) -> Result<SecretBackend, ProfileError> {
        if Self::provider_available(bus).await {
            match tokio::time::timeout(TIMEOUT, Self::store_in_service(account, password)).await {
                Ok(Ok(())) => {
                    self.remove_file(account);
                    tracing::info!(%account, "password stored in the Secret Service");
                    return Ok(SecretBackend::SecretService);
                }
                Ok(Err(e)) => tracing::warn!(%account, error = %e, "Secret Service refused the password; using the file fallback"),
                Err(_) => tracing::warn!(%account, "Secret Service did not answer in time; using the file fallback"),
            }
        } else {
            tracing::warn!(%account, "no Secret Service provider on the session bus; storing the password in a file only the user can read");
        }
        self.store_in_file(account, password)?;
        Ok(SecretBackend::File)
    }

    async fn store_in_service(account: &str, password: &Password) -> Result<(), oo7::dbus::Error> {
        let svc = oo7::dbus::Service::new().await?;
        let coll = svc.default_collection().await?;
        coll.create_item(
            &format!("imsync sync password for {account}"),
            &Self::attributes(account),
            password.expose(),
            true,
            None,
        )
        .await?;
        Ok(())
    }

    /// The password of `account`, if one was stored.
    pub async fn lookup(&self, bus: &zbus::Connection, account: &str) -> Result<Option<Password>, ProfileError> {
        if Self::provider_available(bus).await {
            match tokio::time::timeout(TIMEOUT, Self::lookup_in_service(account)).await {
                Ok(Ok(Some(p))) => return Ok(Some(p)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(%account, error = %e, "cannot read from the Secret Service"),
                Err(_) => tracing::warn!(%account, "Secret Service did not answer in time"),
            }
        }
        self.lookup_in_file(account)
    }

    async fn lookup_in_service(account: &str) -> Result<Option<Password>, oo7::dbus::Error> {
        let svc = oo7::dbus::Service::new().await?;
        let coll = svc.default_collection().await?;
        let items = coll.search_items(&Self::attributes(account)).await?;
        let Some(item) = items.first() else { return Ok(None) };
        let secret = item.secret().await?;
        Ok(Some(Password(String::from_utf8_lossy(secret.as_bytes()).into_owned())))
    }

    /// Forget the password of `account` everywhere.
    pub async fn remove(&self, bus: &zbus::Connection, account: &str) -> Result<(), ProfileError> {
        if Self::provider_available(bus).await {
            let res = tokio::time::timeout(TIMEOUT, async {
                let svc = oo7::dbus::Service::new().await?;
                let coll = svc.default_collection().await?;
                for item in coll.search_items(&Self::attributes(account)).await? {
                    item.delete(None).await?;
                }
                Ok::<_, oo7::dbus::Error>(())
            })
            .await;
            if !matches!(res, Ok(Ok(()))) {
                tracing::warn!(%account, "could not remove the password from the Secret Service");
            }
        }
        self.remove_file(account);
        Ok(())
    }

    fn file_for(&self, account: &str) -> PathBuf {
        // The account name may hold any character; the file name is its hex form.
        let name: String = account.bytes().map(|b| format!("{b:02x}")).collect();
        self.fallback_dir.join(name)
    }

    fn ensure_dir(&self) -> Result<(), ProfileError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.fallback_dir)
            .map_err(|e| ProfileError::Secret(format!("cannot create {}: {e}", self.fallback_dir.display())))
    }

    /// Write `data` to `path` (mode 0600) atomically.
    fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), ProfileError> {
        let tmp = path.with_extension("new");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ProfileError::Secret(format!("cannot write {}: {e}", tmp.display())))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| ProfileError::Secret(format!("cannot write {}: {e}", path.display())))
    }

    /// The key of the fallback files, made on first use.
    fn file_key(&self, create: bool) -> Result<Option<Aes256Gcm>, ProfileError> {
        let path = self.fallback_dir.join("key");
        let key = match std::fs::read(&path) {
            Ok(k) if k.len() == 32 => k,
            Ok(_) => return Err(ProfileError::Secret(format!("{} is damaged", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).map_err(|e| ProfileError::Secret(format!("no randomness: {e}")))?;
                Self::write_private(&path, &k)?;
                k
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProfileError::Secret(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(Some(Aes256Gcm::new_from_slice(&key).map_err(|e| ProfileError::Secret(e.to_string()))?))
    }

    fn store_in_file(&self, account: &str, password: &Password) -> Result<(), ProfileError> {
        self.ensure_dir()?;
        let cipher = self.file_key(true)?.expect("created");
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| ProfileError::Secret(format!("no randomness: {e}")))?;
        // The account name is bound to the ciphertext: a file copied to another name fails.
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: password.expose().as_bytes(), aad: account.as_bytes() })
            .map_err(|_| ProfileError::Secret("cannot encrypt the password".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        let text = format!("{FILE_MAGIC}{}\n", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, blob));
        Self::write_private(&self.file_for(account), text.as_bytes())
    }

    fn lookup_in_file(&self, account: &str) -> Result<Option<Password>, ProfileError> {
        let text = match std::fs::read_to_string(self.file_for(account)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProfileError::Secret(format!("cannot read the stored password: {e}"))),
        };
        let damaged = || ProfileError::Secret(format!("the stored password of {account} cannot be read; set it again"));
        let b64 = text.trim_end().strip_prefix(FILE_MAGIC).ok_or_else(damaged)?;
        let blob = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).map_err(|_| damaged())?;
        if blob.len() < 12 {
            return Err(damaged());
        }
        let cipher = self.file_key(false)?.ok_or_else(damaged)?;
        let clear = cipher
            .decrypt(Nonce::from_slice(&blob[..12]), Payload { msg: &blob[12..], aad: account.as_bytes() })
            .map_err(|_| damaged())?;
        Ok(Some(Password(String::from_utf8(clear).map_err(|_| damaged())?)))
    }

    fn remove_file(&self, account: &str) {
        let _ = std::fs::remove_file(self.file_for(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn password_is_never_printed() {
        let p = Password::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn file_fallback_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::new(dir.path().join("secrets"));
        s.store_in_file("xmpp:a/b@c", &Password::new("pä ss")).unwrap();
        assert_eq!(s.lookup_in_file("xmpp:a/b@c").unwrap().unwrap().expose(), "pä ss");
        let f = s.file_for("xmpp:a/b@c");
        // never in clear text, in any file
        for entry in std::fs::read_dir(dir.path().join("secrets")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(5).any(|w| w == "pä ss".as_bytes()));
        }
        // a file copied to another account's name does not decrypt
        std::fs::copy(&f, s.file_for("xmpp:other")).unwrap();
        assert!(matches!(s.lookup_in_file("xmpp:other"), Err(ProfileError::Secret(_))));
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("secrets")).unwrap().permissions().mode() & 0o777, 0o700);
        s.remove_file("xmpp:a/b@c");
        assert!(s.lookup_in_file("xmpp:a/b@c").unwrap().is_none());
    }
}
