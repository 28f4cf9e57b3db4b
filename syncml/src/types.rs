//! The SyncML 1.2 (OMA DS 1.2 representation protocol) message model.
//!
//! These types are encoding-independent: `codec::xml` maps them to and from
//! XML; a future `codec::wbxml` maps the same types to and from WBXML.
//!
//! Only the parts of SyncML that a data-synchronisation client needs are
//! modelled. Identifiers that the protocol defines as strings (MsgID, CmdID,
//! MsgRef, CmdRef, SessionID) are kept as strings so that unusual but legal
//! values from a peer survive a decode/encode round trip.

use crate::devinf::DevInf;

/// `VerDTD` value for SyncML 1.2.
pub const VER_DTD_1_2: &str = "1.2";
/// `VerProto` value for SyncML/OMA DS 1.2.
pub const VER_PROTO_1_2: &str = "SyncML/1.2";
/// MIME type of DevInf 1.2 in XML (Meta/Type of Put/Get/Results).
pub const DEVINF_XML_TYPE: &str = "application/vnd.syncml-devinf+xml";
/// LocURI of the DevInf 1.2 object.
pub const DEVINF_URI: &str = "./devinf12";
/// Meta/Type of basic authentication credentials.
pub const AUTH_BASIC: &str = "syncml:auth-basic";
/// Meta/Type of MD5 digest authentication credentials.
pub const AUTH_MD5: &str = "syncml:auth-md5";

/// One SyncML message (one HTTP request or response body).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub hdr: SyncHdr,
    pub body: Vec<Command>,
    /// `<Final/>` at the end of the SyncBody: last message of a package.
    pub final_: bool,
}

/// `SyncHdr`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncHdr {
    pub ver_dtd: String,
    pub ver_proto: String,
    pub session_id: String,
    pub msg_id: String,
    pub target: Location,
    pub source: Location,
    pub resp_uri: Option<String>,
    pub no_resp: bool,
    pub cred: Option<Cred>,
    pub meta: Option<Meta>,
}

/// `Target` / `Source`: a `LocURI` with an optional `LocName`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub loc_uri: String,
    pub loc_name: Option<String>,
}

impl Location {
    pub fn new(uri: impl Into<String>) -> Self {
        Location { loc_uri: uri.into(), loc_name: None }
    }
}

/// `Cred`: authentication credentials (Meta Type/Format + Data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cred {
    pub meta: Meta,
    pub data: String,
}

/// `Chal`: an authentication challenge (Meta Type/Format/NextNonce).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chal {
    pub meta: Meta,
}

/// `Anchor` (meta information): sync anchors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Anchor {
    pub last: Option<String>,
    pub next: Option<String>,
}

/// `Meta` with its `syncml:metinf` content. Unknown meta elements are ignored
/// on decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub format: Option<String>,
    pub type_: Option<String>,
    pub mark: Option<String>,
    pub size: Option<u64>,
    pub anchor: Option<Anchor>,
    pub version: Option<String>,
    pub next_nonce: Option<String>,
    pub max_msg_size: Option<u64>,
    pub max_obj_size: Option<u64>,
}

impl Meta {
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }
    pub fn with_type(t: impl Into<String>) -> Self {
        Meta { type_: Some(t.into()), ..Meta::default() }
    }
}

/// The content of an `Item`'s `Data` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemData {
    /// Character data (vCard, iCalendar, a status anchor text, ...), as the
    /// UTF-8 bytes of the text. In XML it travels as escaped text or CDATA.
    Bytes(Vec<u8>),
    /// A nested `<DevInf xmlns='syncml:devinf'>` document.
    DevInf(Box<DevInf>),
    /// A nested `<Anchor xmlns='syncml:metinf'>` (in a Status for an Alert).
    Anchor(Anchor),
}

impl ItemData {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            ItemData::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// `Item`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    pub target: Option<Location>,
    pub source: Option<Location>,
    pub meta: Option<Meta>,
    pub data: Option<ItemData>,
    /// `<MoreData/>`: this item is a chunk of a large object; more follows.
    pub more_data: bool,
}

/// `Alert`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alert {
    pub cmd_id: String,
    pub no_resp: bool,
    pub cred: Option<Cred>,
    /// The alert code (`Data`), e.g. 200..205 sync modes, 222 next message.
    pub data: Option<u16>,
    pub items: Vec<Item>,
}

/// `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub cmd_id: String,
    pub msg_ref: String,
    pub cmd_ref: String,
    /// Name of the referenced command (`SyncHdr`, `Alert`, `Add`, ...).
    pub cmd: String,
    pub target_refs: Vec<String>,
    pub source_refs: Vec<String>,
    pub cred: Option<Cred>,
    pub chal: Option<Chal>,
    /// The status code (`Data`).
    pub data: u16,
    pub items: Vec<Item>,
}

/// `Sync`: a container of Add/Replace/Delete (and other) commands for one
/// datastore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sync {
    pub cmd_id: String,
    pub no_resp: bool,
    pub cred: Option<Cred>,
    pub target: Option<Location>,
    pub source: Option<Location>,
    pub meta: Option<Meta>,
    pub number_of_changes: Option<u32>,
    pub commands: Vec<Command>,
}

/// `Add`, `Replace`, `Delete`, `Copy`: a data-manipulation command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemCmd {
    pub cmd_id: String,
    pub no_resp: bool,
    pub cred: Option<Cred>,
    pub meta: Option<Meta>,
    pub items: Vec<Item>,
}

/// `Put` / `Get`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutGet {
    pub cmd_id: String,
    pub no_resp: bool,
    pub lang: Option<String>,
    pub cred: Option<Cred>,
    pub meta: Option<Meta>,
    pub items: Vec<Item>,
}

/// `Results` (answer to a `Get`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Results {
    pub cmd_id: String,
    pub msg_ref: Option<String>,
    pub cmd_ref: String,
    pub meta: Option<Meta>,
    pub target_refs: Vec<String>,
    pub source_refs: Vec<String>,
    pub items: Vec<Item>,
}

/// `Map`: client -> server LUID mapping for one datastore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    pub cmd_id: String,
    pub target: Location,
    pub source: Location,
    pub cred: Option<Cred>,
    pub meta: Option<Meta>,
    pub items: Vec<MapItem>,
}

/// `MapItem`: Target = server id, Source = client id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapItem {
    pub target: Location,
    pub source: Location,
}

/// A command this model does not represent in detail (Exec, Search, Atomic,
/// Sequence, Move, ...). Kept so that the receiver can answer it with a
/// status (e.g. 406 "optional feature not supported").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtherCmd {
    pub name: String,
    pub cmd_id: String,
    pub no_resp: bool,
}

/// A SyncBody command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Alert(Alert),
    Status(Status),
    Sync(Sync),
    Add(ItemCmd),
    Replace(ItemCmd),
    Delete(ItemCmd),
    Copy(ItemCmd),
    Put(PutGet),
    Get(PutGet),
    Results(Results),
    Map(Map),
    Other(OtherCmd),
}

impl Command {
    /// The element name of this command.
    pub fn name(&self) -> &str {
        match self {
            Command::Alert(_) => "Alert",
            Command::Status(_) => "Status",
            Command::Sync(_) => "Sync",
            Command::Add(_) => "Add",
            Command::Replace(_) => "Replace",
            Command::Delete(_) => "Delete",
            Command::Copy(_) => "Copy",
            Command::Put(_) => "Put",
            Command::Get(_) => "Get",
            Command::Results(_) => "Results",
            Command::Map(_) => "Map",
            Command::Other(o) => &o.name,
        }
    }

    pub fn cmd_id(&self) -> &str {
        match self {
            Command::Alert(c) => &c.cmd_id,
            Command::Status(c) => &c.cmd_id,
            Command::Sync(c) => &c.cmd_id,
            Command::Add(c) | Command::Replace(c) | Command::Delete(c) | Command::Copy(c) => {
                &c.cmd_id
            }
            Command::Put(c) | Command::Get(c) => &c.cmd_id,
            Command::Results(c) => &c.cmd_id,
            Command::Map(c) => &c.cmd_id,
            Command::Other(c) => &c.cmd_id,
        }
    }

    /// Whether the sender asked for no Status (`<NoResp/>`). Status, Results
    /// and Map never carry NoResp in this model.
    pub fn no_resp(&self) -> bool {
        match self {
            Command::Alert(c) => c.no_resp,
            Command::Sync(c) => c.no_resp,
            Command::Add(c) | Command::Replace(c) | Command::Delete(c) | Command::Copy(c) => {
                c.no_resp
            }
            Command::Put(c) | Command::Get(c) => c.no_resp,
            Command::Other(c) => c.no_resp,
            Command::Status(_) | Command::Results(_) | Command::Map(_) => false,
        }
    }
}
