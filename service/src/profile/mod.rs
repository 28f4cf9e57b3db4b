//! The user information unit: IM accounts with their sync settings ([`settings`]), the state
//! database ([`store`], with [`migrations`]) and the passwords ([`secrets`]).

pub mod migrations;
pub mod provisioning;
pub mod roster;
pub mod secrets;
pub mod settings;
pub mod store;

pub use secrets::{Password, Secrets};
pub use roster::{RosterEntry, Subscription};
pub use settings::{Account, AccountUpdate, ClassSettings, SettingValue};
pub use store::{ClassState, CommitItem, SessionCommit, Store, TrackedItem};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("invalid value for '{key}': {reason}")]
    InvalidArgs { key: String, reason: String },
    #[error("no account named '{0}'")]
    NoSuchAccount(String),
    #[error("state database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("state database: {0}")]
    Schema(String),
    #[error("{0}")]
    Io(String),
    #[error("secret store: {0}")]
    Secret(String),
}
