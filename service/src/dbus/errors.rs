//! Every D-Bus error the service's methods return. The names are listed in the README.

use crate::engine::EngineError;
use crate::profile::ProfileError;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.imsync.Error")]
pub enum Error {
    /// A D-Bus-level error from zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An argument is malformed: unknown key, wrong type, bad URL, unknown mode or class.
    InvalidArgs(String),
    /// An OMA Client Provisioning document cannot be used (the message names the problem).
    InvalidProvisioning(String),
    /// No account is set up, or the account lacks a server or credentials.
    NotConfigured(String),
    /// The named account does not exist.
    NoSuchAccount(String),
    /// This version cannot do that yet.
    NotSupported(String),
    /// The job is not running (Cancel on a finished job).
    NotRunning(String),
    /// Another job of the account is running.
    Busy(String),
    /// The caller is not allowed to use the service (another Unix user).
    AccessDenied(String),
    /// The secret store failed.
    SecretStore(String),
    /// The state database or another internal part failed.
    Internal(String),
}

impl From<ProfileError> for Error {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::InvalidArgs { .. } => Error::InvalidArgs(e.to_string()),
            ProfileError::NoSuchAccount(_) => Error::NoSuchAccount(e.to_string()),
            ProfileError::Secret(_) => Error::SecretStore(e.to_string()),
            ProfileError::Database(_) | ProfileError::Schema(_) | ProfileError::Io(_) => Error::Internal(e.to_string()),
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotConfigured(m) => Error::NotConfigured(m),
            EngineError::NoSuchAccount(m) => Error::NoSuchAccount(format!("no account named '{m}'")),
            EngineError::Profile(p) => p.into(),
            EngineError::Busy(m) => Error::Busy(m),
            other => Error::Internal(other.to_string()),
        }
    }
}
