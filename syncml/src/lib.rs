//! Sans-IO SyncML (OMA DS 1.2) client.
//!
//! * [`types`]: the SyncML message model.
//! * [`devinf`]: the DevInf 1.2 model.
//! * [`codec`]: bytes <-> model (XML and WBXML, [`Encoding`]).
//! * [`auth`]: basic / md5 credentials.
//! * [`session`]: the client session state machine (no I/O: the caller does
//!   HTTP and storage, driven by [`session::Event`]s).

pub mod auth;
pub mod codec;
pub mod devinf;
pub mod session;
pub mod types;

pub use codec::{DecodeError, Encoding};
pub use devinf::DevInf;
pub use session::{
    AuthType, Change, ClientItemResult, ClientSession, Credentials, Event, ItemKind, ItemResult,
    ServerItem, ServerItemKind, SessionConfig, SessionError, SessionReport, StoreConfig,
    StoreReport, SyncMode, status_description,
};
