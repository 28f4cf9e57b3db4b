//! imsync: one-call backup of a Linux phone's personal data.
//!
//! Layers, from the bus inwards:
//! - [`dbus`]: the thin D-Bus face (`org.imsync.Sync1`, `org.imsync.Job1`);
//! - [`engine`]: jobs, change tracking, the backup driver that runs a [`syncml`] session;
//! - [`transport`]: HTTP(S) for SyncML messages;
//! - [`sources`]: the universal interface to the phone's stores (EDS, ...), yielding [`item`]s;
//! - [`profile`]: the one SQLite store (accounts, sync state, history) and the secrets.

pub mod class;
pub mod cli;
pub mod daemon_args;
pub mod dbus;
pub mod engine;
pub mod item;
pub mod logging;
pub mod profile;
pub mod sources;
pub mod transport;
