//! The SyncML client session state machine (sans-IO).
//!
//! # Design
//!
//! A [`ClientSession`] performs no I/O, reads no clock and draws no random
//! numbers: the driver (the `service` crate) does HTTP and storage, and passes
//! in everything else through [`SessionConfig`]. The driver loop is:
//!
//! ```text
//! loop {
//!     match session.poll() {
//!         Event::Send { url, body, .. }          => { let r = http_post(url, body); session.receive(r.status, r.content_type, &r.body) }
//!         Event::NeedChanges { store, mode }     => session.provide_changes_as(&store, ct, ver, changes_for(store, mode)),
//!         Event::ServerItems { store, items }    => session.server_item_results(&store, apply(items)),
//!         Event::Finished(report)                => { commit(report); break }
//!         Event::Failed(err)                     => { log(err); break }
//!     }
//! }
//! ```
//!
//! ## Packages and stages
//!
//! OMA DS exchanges *packages*; a package is one or more messages, the last
//! one carrying `<Final/>`. Client and server alternate: when our package is
//! complete (we sent Final) the server sends its package; messages the server
//! sends while our package is still in progress (and messages we send while
//! the server's package is in progress) carry statuses and, from us, `Alert
//! 222` ("next message") when we have nothing else to say.
//!
//! [`Stage`] tracks which of our packages we are in:
//!
//! * `Init` (package 1): credentials, `Put` + `Get ./devinf12`, one `Alert`
//!   per store. The server answers with package 2: statuses, `Results`
//!   (its DevInf) and its own `Alert` per store carrying the agreed sync mode.
//!   Each agreed store produces [`Event::NeedChanges`]. A 401/407 on the
//!   SyncHdr with a `Chal` makes us resend package 1 once with the
//!   challenged credentials (next MsgID, same SessionID).
//! * `Sync` (package 3): statuses for package 2 and one `Sync` per store with
//!   our changes, split over as many messages as the server's MaxMsgSize
//!   requires (each filled up to a few hundred bytes below it); Final on the
//!   last one. Consecutive changes of one kind travel as one Add/Replace/
//!   Delete with several Items and one Meta/Type (SyncML allows Item+). The server answers with package 4:
//!   statuses per item and its own `Sync` per store (→ [`Event::ServerItems`]).
//! * `Map` (package 5 and any later round): statuses for package 4 and a
//!   `Map` per store for the items the driver stored under a new local id.
//!   The session finishes when a complete server package needs no answer
//!   (only statuses) and nothing is left to send.
//!
//! Commands we send are recorded by (MsgID, CmdID) so that the server's
//! statuses can be attributed (per item, per store). Statuses we owe the
//! server are queued in the order of the server's commands; those for server
//! items are placeholders until the driver answers `ServerItems`.
//!
//! ## Encoding and version
//!
//! Messages go out in WBXML by default ([`ClientSession::new`]) or in the
//! encoding given to [`ClientSession::with_encoding`]. Answers are decoded by
//! their Content-Type (or sniffed). If the *first* answer to a WBXML message
//! is an HTTP 4xx, has a non-SyncML Content-Type or does not decode, the
//! session starts over in XML (MsgID 1, original URL) and the report says
//! `encoding_fallback` (the driver remembers it per server). If the first
//! answer is SyncML 1.1 (VerProto) or a SyncHdr status 505/513, the session
//! starts over in SyncML 1.1 (`./devinf11`, DevInf VerDTD 1.1).
//!
//! ## Modes
//!
//! A configured two-way sync without a Last anchor is alerted as slow (201);
//! a 508 on our Alert is followed by the server's 201 Alert, which is what
//! [`Event::NeedChanges`] reports. Refresh-from-client (203) is never chosen
//! by the session, only sent when configured. Server Add/Replace/Delete in
//! every mode come as [`Event::ServerItems`]; results with a LUID become Map
//! items sent in package 5.
//!
//! ## Large objects
//!
//! A change whose command does not fit into an (otherwise empty) message is
//! sent in chunks: each chunk fills the room left in its message, the first
//! carries `Meta/Size` (the whole object), all but the last `<MoreData/>`,
//! and nothing follows a chunk in its message. The server answers 213 per
//! chunk and the final status for the last one (424 = size mismatch). A
//! change bigger than the server's `MaxObjSize` is not sent (413 in the
//! report). Server chunks are reassembled (bounded by our MaxObjSize).
//!
//! ## Statuses
//!
//! Every item status is reported with the server's code ([`ClientItemResult`]):
//! a status for a command of several items names them by SourceRef (one
//! status per item, or one for several) or, naming none, is the command's;
//! a rejected chunk fails its item; 420 (device full) stops sending to that
//! store (the unsent changes are reported, the store fails); SyncHdr 401/407
//! with a Chal is retried once with the challenged type and nonce; other
//! SyncHdr errors fail the session; [`status_description`] names any code.
//!
//! Everything is bounded: at most [`MAX_MESSAGES`] messages per session, the
//! decoder limits nesting, chunked server items are limited by our MaxObjSize.
//! Encoding iterates only over `Vec`s and `BTreeMap`s, so output is
//! deterministic.

use std::collections::{BTreeMap, VecDeque};

use crate::auth;
use crate::codec::{self, xml, DecodeError};
pub use crate::codec::Encoding;
use crate::devinf::DevInf;
use crate::types::*;

/// Upper bound of messages we send in one session.
pub const MAX_MESSAGES: u32 = 1000;

/// HTTP Content-Type of XML messages.
pub const CONTENT_TYPE_XML: &str = xml::CONTENT_TYPE;
/// HTTP Content-Type of WBXML messages.
pub const CONTENT_TYPE_WBXML: &str = codec::wbxml::CONTENT_TYPE;

/// Longest RespURI we follow (a longer one is hostile: it would be repeated
/// in every message's header).
pub const MAX_RESP_URI: usize = 2048;

/// Smallest large-object chunk we start in a message (else: next message).
const MIN_CHUNK: u64 = 256;

/// Bytes we stay below the MaxMsgSize in force. Message sizes are accounted by
/// encoding (exact for XML; for WBXML exact but for a page switch after a
/// Status with an Anchor), and `poll()` checks in debug builds that the
/// accounting bounds the real message: the margin only guards against a
/// server that counts a few bytes differently.
const MESSAGE_HEADROOM: u64 = 256;

/// Smallest message limit we work with: a MaxMsgSize below this cannot hold a
/// SyncML message with anything in it (absurd; a hostile or broken server).
const MIN_MESSAGE_LIMIT: u64 = 512;

/// What a SyncML status code means (by class for codes we do not know).
#[allow(clippy::match_overlapping_arm)] // specific codes first, then their class
pub fn status_description(code: u16) -> &'static str {
    match code {
        200 => "ok",
        201 => "item added",
        202 => "accepted for processing",
        203 => "non-authoritative response",
        204 => "no content",
        205 => "reset content",
        206 => "partial content",
        207 => "conflict resolved with merge",
        208 => "conflict resolved, client's command won",
        209 => "conflict resolved with duplicate",
        210 => "delete without archive",
        211 => "item not deleted (not found)",
        212 => "authentication accepted",
        213 => "chunked item accepted and buffered",
        214 => "operation cancelled",
        215 => "not executed",
        216 => "atomic roll back ok",
        300..=399 => "redirection",
        400 => "bad request",
        401 => "invalid credentials",
        403 => "forbidden",
        404 => "not found",
        405 => "command not allowed",
        406 => "optional feature not supported",
        407 => "missing credentials",
        408 => "request timeout",
        409 => "conflict",
        410 => "gone",
        411 => "size required",
        412 => "incomplete command",
        413 => "request entity too large",
        414 => "URI too long",
        415 => "unsupported media type or format",
        416 => "requested size too big",
        417 => "retry later",
        418 => "already exists",
        419 => "conflict resolved with server data",
        420 => "device full",
        421 => "unknown search grammar",
        422 => "bad CGI script",
        423 => "soft-delete conflict",
        424 => "size mismatch",
        425 => "permission denied",
        426 => "partial item not accepted",
        427 => "item not empty",
        428 => "move failed",
        400..=499 => "client error",
        500 => "command failed",
        501 => "command not implemented",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        505 => "DTD version not supported",
        506 => "processing error",
        507 => "atomic failed",
        508 => "refresh required",
        510 => "data store failure",
        511 => "server failure",
        512 => "synchronization failed",
        513 => "protocol version not supported",
        514 => "operation cancelled",
        516 => "atomic roll back failed",
        517 => "atomic response too large to fit",
        500..=599 => "server error",
        100..=199 => "in progress",
        _ => "unknown status",
    }
}

/// Sync modes (alert codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncMode {
    TwoWay = 200,
    Slow = 201,
    OneWayFromClient = 202,
    RefreshFromClient = 203,
    OneWayFromServer = 204,
    RefreshFromServer = 205,
}

impl SyncMode {
    pub fn code(self) -> u16 {
        self as u16
    }
    pub fn from_code(code: u16) -> Option<SyncMode> {
        Some(match code {
            200 => SyncMode::TwoWay,
            201 => SyncMode::Slow,
            202 => SyncMode::OneWayFromClient,
            203 => SyncMode::RefreshFromClient,
            204 => SyncMode::OneWayFromServer,
            205 => SyncMode::RefreshFromServer,
            _ => return None,
        })
    }
    /// Whether the client sends its changes in this mode.
    pub fn client_sends(self) -> bool {
        !matches!(self, SyncMode::OneWayFromServer | SyncMode::RefreshFromServer)
    }
    /// Whether the client must send *all* its items (not just changes).
    pub fn client_sends_all(self) -> bool {
        matches!(self, SyncMode::Slow | SyncMode::RefreshFromClient)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Basic,
    Md5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub auth: AuthType,
    /// Raw (base64-decoded) nonce from the previous session's `NextNonce`.
    pub nonce: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Our datastore URI, e.g. "./contacts".
    pub local_uri: String,
    /// The server's datastore URI, e.g. "contacts".
    pub remote_uri: String,
    /// The mode we ask for in our Alert. `RefreshFromClient` makes the server
    /// delete all its items first: only use it when explicitly configured.
    pub mode: SyncMode,
    pub last_anchor: Option<String>,
    pub next_anchor: String,
    /// e.g. "text/vcard"
    pub content_type: String,
    /// e.g. "3.0"
    pub content_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// First POST goes here; also SyncHdr Target LocURI.
    pub server_url: String,
    /// SyncHdr Source LocURI.
    pub device_id: String,
    /// SyncHdr SessionID.
    pub session_id: String,
    pub credentials: Option<Credentials>,
    /// What we announce (and accept).
    pub max_msg_size: u32,
    pub max_obj_size: u32,
    /// Ours, sent with `Put ./devinf12` in the first message (if `send_devinf`), and as
    /// `Results` whenever the server asks for it with `Get`.
    pub devinf: DevInf,
    /// Put our DevInf in package 1. A client that knows the server already has this very
    /// DevInf (from an earlier session) may leave it out: the server keeps what it got.
    pub send_devinf: bool,
    /// The server's DevInf as received in an earlier session. With it, package 1 has no
    /// `Get ./devinf12` (the server's DevInf is often 10 KB or more), and
    /// [`ClientSession::server_devinf`] answers from it until the server sends a new one.
    pub known_server_devinf: Option<DevInf>,
    pub stores: Vec<StoreConfig>,
}

impl SessionConfig {
    /// A configuration without stores, credentials and DevInf (for tests and
    /// struct-update syntax).
    pub fn new(server_url: impl Into<String>, device_id: impl Into<String>, session_id: impl Into<String>) -> Self {
        SessionConfig {
            server_url: server_url.into(),
            device_id: device_id.into(),
            session_id: session_id.into(),
            credentials: None,
            max_msg_size: 150_000,
            max_obj_size: 4_000_000,
            devinf: DevInf::default(),
            send_devinf: true,
            known_server_devinf: None,
            stores: Vec::new(),
        }
    }
}

/// A local change the driver hands to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add { luid: String, data: Vec<u8> },
    Replace { luid: String, data: Vec<u8> },
    Delete { luid: String },
}

impl Change {
    pub fn kind(&self) -> ItemKind {
        match self {
            Change::Add { .. } => ItemKind::Add,
            Change::Replace { .. } => ItemKind::Replace,
            Change::Delete { .. } => ItemKind::Delete,
        }
    }
    pub fn luid(&self) -> &str {
        match self {
            Change::Add { luid, .. } | Change::Replace { luid, .. } | Change::Delete { luid } => luid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Add,
    Replace,
    Delete,
}

impl ItemKind {
    pub fn cmd_name(self) -> &'static str {
        match self {
            ItemKind::Add => "Add",
            ItemKind::Replace => "Replace",
            ItemKind::Delete => "Delete",
        }
    }
}

/// Kind of a server item (same as [`ItemKind`]).
pub type ServerItemKind = ItemKind;

/// An item the server sent (complete: chunks are reassembled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerItem {
    /// Pass back in [`ItemResult::handle`].
    pub handle: u64,
    pub kind: ServerItemKind,
    /// Server LUID (Item Source LocURI).
    pub server_id: String,
    /// Our LUID if the server gave one (Item Target LocURI).
    pub local_id: Option<String>,
    pub data: Vec<u8>,
    pub content_type: Option<String>,
}

/// The driver's answer for one [`ServerItem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub handle: u64,
    /// SyncML status to send: 200 ok, 201 added, 211 item not deleted, 500 ...
    pub status: u16,
    /// Our LUID for the item: a Map entry (server id -> luid) is sent for it.
    pub luid: Option<String>,
}

/// What the server said about one change we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientItemResult {
    pub luid: String,
    pub kind: ItemKind,
    /// The server's status (for a large object: the status of its last
    /// chunk, or of the chunk the server rejected); 413 if we did not send it
    /// (bigger than the server's MaxObjSize); 0 if the server never sent a
    /// status (or we never sent the change: see `error`).
    pub status: u16,
    /// Set when the failure is ours (not sent) or the status is missing.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Finished carries the report by value on purpose (API).
pub enum Event {
    /// POST `body` to `url` with HTTP Content-Type `content_type`, then call
    /// `receive()` with the response.
    Send { url: String, body: Vec<u8>, content_type: &'static str },
    /// The server agreed on `mode` for `store` (local_uri). Call
    /// `provide_changes(store, ...)`: all items for Slow/RefreshFromClient,
    /// changes since the last session for TwoWay/OneWayFromClient, nothing
    /// for the from-server modes.
    NeedChanges { store: String, mode: SyncMode },
    /// `store`'s changes were started with [`ClientSession::provide_changes_streamed`] and
    /// fewer are queued than fill the next message: call
    /// [`ClientSession::more_changes`] before polling again (with at least one change, or
    /// with `last`).
    NeedMoreChanges { store: String },
    /// The server sent items for `store`; call `server_item_results` before
    /// polling again.
    ServerItems { store: String, items: Vec<ServerItem> },
    /// The session ended successfully (per-store failures are in the report).
    Finished(SessionReport),
    /// The session failed; nothing from it may be committed.
    Failed(SessionError),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    pub stores: Vec<StoreReport>,
    /// Raw (decoded) nonce for the next session's md5 credentials.
    pub next_nonce: Option<Vec<u8>>,
    pub server_devinf: Option<DevInf>,
    pub messages_sent: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Irregularities that did not fail the session (unknown status refs,
    /// duplicate statuses, missing statuses, ...).
    pub warnings: Vec<String>,
    /// The encoding the session ended up using.
    pub encoding: Encoding,
    /// The server refused our first WBXML message (HTTP 4xx, a non-SyncML or
    /// undecodable answer) and the session was redone in XML: remember to use
    /// XML for this server.
    pub encoding_fallback: bool,
    /// SyncML version of the session: "1.2", or "1.1" when the server only
    /// speaks 1.1 (answered 505 or VerProto SyncML/1.1) and we redid it.
    pub protocol_version: String,
}

impl SessionReport {
    pub fn store(&self, local_uri: &str) -> Option<&StoreReport> {
        self.stores.iter().find(|s| s.local_uri == local_uri)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    pub local_uri: String,
    /// The mode the server agreed on (= `requested` if it never said).
    pub mode: SyncMode,
    pub requested: SyncMode,
    /// Status of our Alert (0 if none received).
    pub alert_status: u16,
    /// Status of our Sync (the first failure, else the first one).
    pub sync_status: Option<u16>,
    pub item_results: Vec<ClientItemResult>,
    pub server_items_received: u32,
    pub next_anchor: String,
    /// Why this store failed; `None` = synchronised (anchors may be committed).
    pub error: Option<String>,
    /// Content type / version our changes were sent as.
    pub content_type: String,
    pub content_version: String,
    /// Changes sent as large objects (in chunks).
    pub large_objects_sent: u32,
    /// The server answered 420 (device full): we stopped sending to it.
    pub server_full: bool,
}

impl StoreReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("authentication failed: server answered status {status} to our credentials")]
    AuthenticationFailed { status: u16 },
    #[error("server answered HTTP status {status}; body starts with {body_start:?}")]
    Http { status: u16, body_start: String },
    #[error("server response (HTTP {http_status}) is not a SyncML message: {error}; body starts with {body_start:?}")]
    Decode { http_status: u16, error: DecodeError, body_start: String },
    #[error("server response has unsupported Content-Type {content_type:?} (HTTP {http_status}); body starts with {body_start:?}")]
    UnsupportedContentType { content_type: String, http_status: u16, body_start: String },
    #[error("server rejected {cmd} with status {status} ({})", status_description(*status))]
    ServerError { status: u16, cmd: String },
    #[error("every store was rejected by the server (store {store}: status {status})")]
    StoreRejected { store: String, status: u16 },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("session exceeded {0} messages")]
    TooManyMessages(u32),
    #[error("session API misuse: {0}")]
    Usage(String),
}

// ---------------------------------------------------------------- internals

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Init,
    Sync,
    Map,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorePhase {
    /// Alert sent, waiting for the server's Alert.
    Alerted,
    /// NeedChanges queued/emitted, waiting for provide_changes.
    NeedChanges,
    /// Changes provided; sending / sent its Sync.
    Active,
}

#[derive(Debug)]
struct OutChange {
    kind: ItemKind,
    luid: String,
    data: Vec<u8>,
    result_idx: usize,
    /// Bytes of `data` already sent as chunks (large object in progress).
    offset: usize,
}

#[derive(Debug)]
struct StoreState {
    cfg: StoreConfig,
    phase: StorePhase,
    agreed: Option<SyncMode>,
    alert_status: u16,
    sync_status: Option<u16>,
    outgoing: VecDeque<OutChange>,
    /// `NumberOfChanges` of the Sync (unknown for a streamed store without a total).
    number_of_changes: Option<u32>,
    /// More changes will come with `more_changes` (a streamed store not finished yet).
    streaming: bool,
    /// NeedMoreChanges was emitted and not answered yet.
    awaiting_more: bool,
    sync_started: bool,
    item_results: Vec<ClientItemResult>,
    server_items_received: u32,
    pending_map: VecDeque<MapItem>,
    unacked_maps: u32,
    /// Handles of ServerItems emitted and not answered yet.
    awaiting_results: Vec<u64>,
    error: Option<String>,
    content_type: String,
    content_version: String,
    large_objects_sent: u32,
    full: bool,
}

impl StoreState {
    fn sync_done(&self) -> bool {
        self.sync_started && self.outgoing.is_empty() && !self.streaming
    }
    /// Bytes queued and not sent yet.
    fn queued_bytes(&self) -> u64 {
        self.outgoing.iter().map(|c| (c.data.len() - c.offset) as u64).sum()
    }
    fn sends_sync(&self) -> bool {
        self.error.is_none() && self.phase == StorePhase::Active
    }
}

#[derive(Debug, Clone)]
enum SentCmd {
    Put,
    Get,
    Alert(usize),
    Sync(usize),
    /// An Add/Replace/Delete: its items' results (in item order; several
    /// consecutive changes of one kind share a command).
    Items { store: usize, results: Vec<usize> },
    /// A chunk of a large object other than the last one.
    Chunk { store: usize, result_idx: usize },
    Map(usize),
    Results,
    Alert222,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum QueuedStatus {
    Ready(Status),
    /// Status for a server item, known once the driver answers.
    ServerItem(u64),
}

#[derive(Debug)]
struct PendingItem {
    template: Status,
    server_id: String,
    status: Option<u16>,
}

#[derive(Debug)]
struct ChunkBuf {
    store: usize,
    kind: ItemKind,
    server_id: String,
    local_id: Option<String>,
    content_type: Option<String>,
    declared_size: Option<u64>,
    data: Vec<u8>,
}

/// The client side of one SyncML session. See the module documentation.
#[derive(Debug)]
pub struct ClientSession {
    cfg: SessionConfig,
    stores: Vec<StoreState>,
    stage: Stage,
    url: String,
    next_msg_id: u32,
    awaiting_response: bool,
    /// Our last sent message carried Final (our package is complete).
    our_final_sent: bool,
    /// Send Cred in the next message.
    send_cred: bool,
    auth_retried: bool,
    sent: BTreeMap<(String, String), SentCmd>,
    last_sent_msg_id: String,
    statuses: VecDeque<QueuedStatus>,
    pending_items: BTreeMap<u64, PendingItem>,
    next_handle: u64,
    results_to_send: Vec<Results>,
    chunk: Option<ChunkBuf>,
    events: VecDeque<Event>,
    server_max_msg_size: Option<u64>,
    server_max_obj_size: Option<u64>,
    next_nonce: Option<Vec<u8>>,
    server_devinf: Option<DevInf>,
    warnings: Vec<String>,
    messages_sent: u32,
    bytes_sent: u64,
    bytes_received: u64,
    failed: Option<SessionError>,
    finished: Option<SessionReport>,
    done: bool,
    encoding: Encoding,
    encoding_fallback: bool,
    /// Speaking SyncML 1.1 (after the server refused 1.2).
    v11: bool,
    /// A decodable SyncML reply arrived (no encoding/version fallback after).
    got_reply: bool,
    /// Send every change in a command of its own (see
    /// [`ClientSession::set_one_item_per_command`]).
    one_item_per_command: bool,
}

fn body_start(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

fn same_uri(a: &str, b: &str) -> bool {
    a.trim_start_matches("./") == b.trim_start_matches("./")
}

impl ClientSession {
    /// A session in the default encoding (WBXML, falling back to XML if the
    /// server refuses it).
    pub fn new(cfg: SessionConfig) -> Self {
        Self::with_encoding(cfg, Encoding::default())
    }

    /// A session that starts in `encoding` (use `Encoding::Xml` for a server
    /// known to refuse WBXML: see [`SessionReport::encoding_fallback`]).
    pub fn with_encoding(cfg: SessionConfig, encoding: Encoding) -> Self {
        let stores = cfg
            .stores
            .iter()
            .map(|s| StoreState {
                cfg: s.clone(),
                phase: StorePhase::Alerted,
                agreed: None,
                alert_status: 0,
                sync_status: None,
                outgoing: VecDeque::new(),
                number_of_changes: None,
                streaming: false,
                awaiting_more: false,
                sync_started: false,
                item_results: Vec::new(),
                server_items_received: 0,
                pending_map: VecDeque::new(),
                unacked_maps: 0,
                awaiting_results: Vec::new(),
                error: None,
                content_type: s.content_type.clone(),
                content_version: s.content_version.clone(),
                large_objects_sent: 0,
                full: false,
            })
            .collect();
        let server_devinf = cfg.known_server_devinf.clone();
        ClientSession {
            url: cfg.server_url.clone(),
            send_cred: cfg.credentials.is_some(),
            cfg,
            stores,
            stage: Stage::Init,
            next_msg_id: 1,
            awaiting_response: false,
            our_final_sent: false,
            auth_retried: false,
            sent: BTreeMap::new(),
            last_sent_msg_id: String::new(),
            statuses: VecDeque::new(),
            pending_items: BTreeMap::new(),
            next_handle: 1,
            results_to_send: Vec::new(),
            chunk: None,
            events: VecDeque::new(),
            server_max_msg_size: None,
            server_max_obj_size: None,
            next_nonce: None,
            server_devinf,
            warnings: Vec::new(),
            messages_sent: 0,
            bytes_sent: 0,
            bytes_received: 0,
            failed: None,
            finished: None,
            done: false,
            encoding,
            encoding_fallback: false,
            v11: false,
            got_reply: false,
            one_item_per_command: false,
        }
    }

    /// Send every change in an Add/Replace/Delete of its own, as libsynthesis
    /// clients do, instead of one command per run of consecutive changes of
    /// one kind (the default: smaller messages, fewer statuses). For a server
    /// that mishandles several Items in a command, and to replay sessions
    /// recorded from such clients.
    pub fn set_one_item_per_command(&mut self, on: bool) {
        self.one_item_per_command = on;
    }

    /// The encoding of the messages we send (changes to XML on fallback).
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The server's DevInf, once received (it is when the first
    /// [`Event::NeedChanges`] is emitted, if the server sent one).
    pub fn server_devinf(&self) -> Option<&DevInf> {
        self.server_devinf.as_ref()
    }

    /// (changes the server acknowledged with a status, changes given) for
    /// `store` (local URI); (0, 0) for an unknown store. For Progress signals.
    pub fn progress(&self, store: &str) -> (u32, u32) {
        match self.store_idx(store) {
            None => (0, 0),
            Some(i) => {
                let st = &self.stores[i];
                let r = &st.item_results;
                let total = (r.len() as u32).max(st.number_of_changes.unwrap_or(0));
                (r.iter().filter(|r| r.status != 0).count() as u32, total)
            }
        }
    }

    fn ver_dtd(&self) -> &'static str {
        if self.v11 {
            "1.1"
        } else {
            VER_DTD_1_2
        }
    }

    fn ver_proto(&self) -> &'static str {
        if self.v11 {
            "SyncML/1.1"
        } else {
            VER_PROTO_1_2
        }
    }

    fn devinf_uri(&self) -> &'static str {
        if self.v11 {
            "./devinf11"
        } else {
            DEVINF_URI
        }
    }

    fn our_devinf(&self) -> DevInf {
        let mut d = self.cfg.devinf.clone();
        if self.v11 {
            d.ver_dtd = "1.1".into();
        }
        d
    }

    /// Start over (new package 1 to the original URL, MsgID 1): after the
    /// server refused our encoding or protocol version on the first message.
    fn restart(&mut self) {
        self.stage = Stage::Init;
        self.url = self.cfg.server_url.clone();
        self.next_msg_id = 1;
        self.our_final_sent = false;
        self.send_cred = self.cfg.credentials.is_some();
        self.sent.clear();
        self.statuses.clear();
        self.pending_items.clear();
        self.results_to_send.clear();
        self.events.clear();
        self.chunk = None;
        self.server_max_msg_size = None;
        self.server_max_obj_size = None;
        for st in &mut self.stores {
            st.phase = StorePhase::Alerted;
            st.agreed = None;
            st.alert_status = 0;
            st.error = None;
            st.streaming = false;
            st.awaiting_more = false;
        }
    }

    /// Warnings collected so far (also returned in the report).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn fail(&mut self, e: SessionError) -> Event {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
        Event::Failed(self.failed.clone().expect("set above"))
    }

    fn warn(&mut self, w: String) {
        // Bounded: a hostile server must not make us grow without limit.
        if self.warnings.len() < 1000 {
            self.warnings.push(w);
        }
    }

    fn store_idx(&self, local_uri: &str) -> Option<usize> {
        self.stores.iter().position(|s| s.cfg.local_uri == local_uri)
    }

    // ------------------------------------------------------------ poll

    /// Next thing to do. Call until it returns `Send`, `Finished` or `Failed`;
    /// `NeedChanges`/`ServerItems` must be answered before polling again.
    pub fn poll(&mut self) -> Event {
        if let Some(e) = &self.failed {
            return Event::Failed(e.clone());
        }
        if let Some(r) = &self.finished {
            return Event::Finished(r.clone());
        }
        if self.awaiting_response {
            return self.fail(SessionError::Usage("poll() called before receive() answered the last Send".into()));
        }
        // Unanswered requests from earlier events?
        for s in &self.stores {
            if s.phase == StorePhase::NeedChanges && !self.events.iter().any(|e| matches!(e, Event::NeedChanges { store, .. } if *store == s.cfg.local_uri)) {
                let msg = format!("NeedChanges for {} was not answered with provide_changes()", s.cfg.local_uri);
                return self.fail(SessionError::Usage(msg));
            }
            if s.awaiting_more {
                let msg = format!("NeedMoreChanges for {} was not answered with more_changes()", s.cfg.local_uri);
                return self.fail(SessionError::Usage(msg));
            }
            if !s.awaiting_results.is_empty() && !self.events.iter().any(|e| matches!(e, Event::ServerItems { store, .. } if *store == s.cfg.local_uri)) {
                let msg = format!("ServerItems for {} were not answered with server_item_results()", s.cfg.local_uri);
                return self.fail(SessionError::Usage(msg));
            }
        }
        if let Some(ev) = self.events.pop_front() {
            return ev;
        }
        if self.done {
            let report = self.build_report();
            self.finished = Some(report.clone());
            return Event::Finished(report);
        }
        if self.messages_sent >= MAX_MESSAGES {
            return self.fail(SessionError::TooManyMessages(MAX_MESSAGES));
        }
        // A streamed store with less queued than a message holds: ask for more first.
        if self.stage == Stage::Sync {
            let fill = self.server_max_msg_size.unwrap_or(u64::from(self.cfg.max_msg_size));
            if let Some(st) = self.stores.iter_mut().find(|st| st.streaming && st.sends_sync() && !st.full && st.queued_bytes() < fill) {
                st.awaiting_more = true;
                return Event::NeedMoreChanges { store: st.cfg.local_uri.clone() };
            }
        }
        let (msg, accounted) = self.build_message();
        let body = self.encoding.encode(&msg);
        // Messages are filled up to a few hundred bytes below MaxMsgSize by
        // summing encoded sizes: that sum must bound the real message.
        debug_assert!(
            accounted.is_none_or(|a| body.len() as u64 <= a),
            "message of {} bytes, accounted {accounted:?}",
            body.len()
        );
        self.messages_sent += 1;
        self.bytes_sent += body.len() as u64;
        self.awaiting_response = true;
        Event::Send { url: self.url.clone(), body, content_type: self.encoding.content_type() }
    }

    // ------------------------------------------------------------ driver answers

    /// Hand over local changes for `store` after [`Event::NeedChanges`], in
    /// the store's configured content type.
    pub fn provide_changes(&mut self, store: &str, changes: Vec<Change>) {
        self.provide_changes_impl(store, None, changes);
    }

    /// Like [`Self::provide_changes`], with the changes in the format chosen
    /// at NeedChanges time (e.g. from [`Self::server_devinf`]): it becomes the
    /// Meta/Type of the commands of this store's Sync.
    pub fn provide_changes_as(&mut self, store: &str, content_type: &str, content_version: &str, changes: Vec<Change>) {
        self.provide_changes_impl(store, Some((content_type, content_version)), changes);
    }

    /// Like [`Self::provide_changes_as`], for a store whose changes come a batch at a time
    /// (a first backup reads a large address book while it sends it): `first` is the first
    /// batch, [`Event::NeedMoreChanges`] asks for the next ones, and the driver answers
    /// with [`Self::more_changes`] until it says `last`. `total` (if known) goes out as
    /// `NumberOfChanges`. The session keeps only about a message's worth of changes queued.
    pub fn provide_changes_streamed(
        &mut self,
        store: &str,
        content_type: &str,
        content_version: &str,
        first: Vec<Change>,
        total: Option<u32>,
    ) {
        if let Some(idx) = self.provide_changes_impl(store, Some((content_type, content_version)), first) {
            let st = &mut self.stores[idx];
            if st.agreed.unwrap_or(st.cfg.mode).client_sends() {
                st.streaming = true;
                st.number_of_changes = total;
                if let Some(t) = total {
                    // (a hint: a total beyond what a phone holds reserves nothing more)
                    let t = (t as usize).min(1 << 20);
                    st.item_results.reserve_exact(t.saturating_sub(st.item_results.len()));
                }
            }
        }
    }

    /// The next batch of a streamed store's changes (see [`Self::provide_changes_streamed`]);
    /// `last`: there are no more. A batch may be empty only with `last`.
    pub fn more_changes(&mut self, store: &str, changes: Vec<Change>, last: bool) {
        let Some(idx) = self.store_idx(store) else {
            self.fail(SessionError::Usage(format!("more_changes() for unknown store {store:?}")));
            return;
        };
        if !self.stores[idx].streaming {
            if !changes.is_empty() {
                self.warn(format!("more_changes() for {store} ignored: its changes are not streamed"));
            }
            self.stores[idx].awaiting_more = false;
            return;
        }
        self.queue_changes(idx, changes);
        let st = &mut self.stores[idx];
        st.awaiting_more = false;
        st.streaming = !last;
    }

    fn provide_changes_impl(&mut self, store: &str, format: Option<(&str, &str)>, changes: Vec<Change>) -> Option<usize> {
        let Some(idx) = self.store_idx(store) else {
            self.fail(SessionError::Usage(format!("provide_changes() for unknown store {store:?}")));
            return None;
        };
        if self.stores[idx].phase != StorePhase::NeedChanges {
            self.warn(format!("provide_changes() for {store} ignored: no NeedChanges pending"));
            return None;
        }
        // The NeedChanges event may not have been polled yet: drop it.
        self.events.retain(|e| !matches!(e, Event::NeedChanges { store: s, .. } if s == store));
        if let Some((ct, ver)) = format {
            self.stores[idx].content_type = ct.to_string();
            self.stores[idx].content_version = ver.to_string();
        }
        let mode = self.stores[idx].agreed.unwrap_or(self.stores[idx].cfg.mode);
        let mut changes = changes;
        if !mode.client_sends() && !changes.is_empty() {
            self.warn(format!("{store}: {} changes ignored in mode {mode:?} (client sends nothing)", changes.len()));
            changes.clear();
        }
        self.queue_changes(idx, changes);
        let st = &mut self.stores[idx];
        st.number_of_changes = Some(st.outgoing.len() as u32);
        st.phase = StorePhase::Active;
        Some(idx)
    }

    /// Queue changes for sending, each with its result slot. Items that do not fit into a
    /// message go out as large objects (in chunks); only the server's MaxObjSize limits
    /// their size. Into a full datastore (420) nothing more goes.
    fn queue_changes(&mut self, idx: usize, changes: Vec<Change>) {
        let max_obj = self.server_max_obj_size;
        let st = &mut self.stores[idx];
        st.item_results.reserve(changes.len());
        for ch in changes {
            let kind = ch.kind();
            let (luid, data) = match ch {
                Change::Add { luid, data } | Change::Replace { luid, data } => (luid, data),
                Change::Delete { luid } => (luid, Vec::new()),
            };
            let result_idx = st.item_results.len();
            let refused = if st.full {
                Some((0, "not sent: the server's datastore is full (420)".to_string()))
            } else if max_obj.is_some_and(|m| data.len() as u64 > m) {
                let why = format!("item too large: {} bytes exceeds the server's MaxObjSize {}", data.len(), max_obj.unwrap_or(0));
                Some((413, why))
            } else {
                None
            };
            if let Some((status, err)) = refused {
                st.item_results.push(ClientItemResult { luid, kind, status, error: Some(err) });
                continue;
            }
            st.item_results.push(ClientItemResult { luid: luid.clone(), kind, status: 0, error: None });
            st.outgoing.push_back(OutChange { kind, luid, data, result_idx, offset: 0 });
        }
    }

    /// Answer [`Event::ServerItems`] for `store`.
    pub fn server_item_results(&mut self, store: &str, results: Vec<ItemResult>) {
        let Some(idx) = self.store_idx(store) else {
            self.fail(SessionError::Usage(format!("server_item_results() for unknown store {store:?}")));
            return;
        };
        self.events.retain(|e| !matches!(e, Event::ServerItems { store: s, .. } if s == store));
        let awaiting = std::mem::take(&mut self.stores[idx].awaiting_results);
        for r in results {
            if !awaiting.contains(&r.handle) {
                self.warn(format!("{store}: result for unknown or already answered handle {}", r.handle));
                continue;
            }
            let Some(p) = self.pending_items.get_mut(&r.handle) else { continue };
            p.status = Some(r.status);
            let server_id = p.server_id.clone();
            if let Some(luid) = r.luid {
                self.stores[idx]
                    .pending_map
                    .push_back(MapItem { target: Location::new(server_id), source: Location::new(luid) });
            }
        }
        let mut missing = Vec::new();
        for h in awaiting {
            if let Some(p) = self.pending_items.get_mut(&h) {
                if p.status.is_none() {
                    p.status = Some(500);
                    missing.push(h);
                }
            }
        }
        for h in missing {
            self.warn(format!("{store}: no result for server item handle {h}; answered 500"));
        }
    }

    // ------------------------------------------------------------ receive

    /// Feed the HTTP response to the last `Send`. Errors surface as
    /// `Event::Failed` from the next `poll()`.
    pub fn receive(&mut self, http_status: u16, content_type: Option<&str>, body: &[u8]) {
        if self.failed.is_some() || self.finished.is_some() {
            return;
        }
        if !self.awaiting_response {
            self.fail(SessionError::Usage("receive() called without a preceding Send".into()));
            return;
        }
        self.awaiting_response = false;
        self.bytes_received += body.len() as u64;
        // The first answer decides whether the server takes WBXML: if not,
        // redo the session start in XML (once).
        let may_fall_back = !self.got_reply && self.encoding == Encoding::Wbxml && !self.encoding_fallback;
        if http_status != 200 {
            if may_fall_back && (400..500).contains(&http_status) {
                self.fall_back_to_xml(format!("HTTP {http_status}"));
                return;
            }
            self.fail(SessionError::Http { status: http_status, body_start: body_start(body) });
            return;
        }
        let declared = content_type.map(|ct| (ct, Encoding::from_content_type(ct)));
        if let Some((ct, None)) = declared {
            if may_fall_back {
                self.fall_back_to_xml(format!("answer of Content-Type {ct:?}"));
                return;
            }
            self.fail(SessionError::UnsupportedContentType { content_type: ct.to_string(), http_status, body_start: body_start(body) });
            return;
        }
        let encoding = declared.and_then(|(_, e)| e).unwrap_or_else(|| Encoding::sniff(body));
        if body.iter().all(|b| b.is_ascii_whitespace()) && self.stage == Stage::Map && self.our_final_sent && !self.needs_reply() {
            self.warn("server ended the session with an empty HTTP body instead of a Final message".into());
            self.done = true;
            return;
        }
        let max = u64::from(self.cfg.max_msg_size);
        if body.len() as u64 > max + max / 4 + 1024 {
            // Decoding it would cost memory in proportion: a server that
            // ignores what we announced is not followed (a little slack for
            // servers that count differently).
            self.fail(SessionError::Protocol(format!("server message of {} bytes exceeds our MaxMsgSize {max}", body.len())));
            return;
        }
        if body.len() as u64 > max {
            self.warn(format!("server message of {} bytes exceeds our MaxMsgSize {max}", body.len()));
        }
        // Servers answer in our encoding; tolerate one that labels it wrongly.
        let decoded = encoding.decode(body).or_else(|e| {
            let other = Encoding::sniff(body);
            if other != encoding {
                other.decode(body)
            } else {
                Err(e)
            }
        });
        let msg = match decoded {
            Ok(m) => m,
            Err(error) => {
                if may_fall_back {
                    self.fall_back_to_xml(format!("undecodable answer ({error})"));
                    return;
                }
                self.fail(SessionError::Decode { http_status, error, body_start: body_start(body) });
                return;
            }
        };
        let first = !self.got_reply;
        self.got_reply = true;
        if first && !self.v11 {
            let hdr_505 = msg.body.iter().any(|c| matches!(c, Command::Status(s) if (s.cmd_ref == "0" || s.cmd == "SyncHdr") && (s.data == 505 || s.data == 513)));
            if hdr_505 || msg.hdr.ver_proto.trim() == "SyncML/1.1" || msg.hdr.ver_dtd.trim() == "1.1" {
                self.warn(format!(
                    "server does not speak SyncML 1.2 (VerProto {:?}{}); session redone in SyncML 1.1",
                    msg.hdr.ver_proto,
                    if hdr_505 { ", status 505" } else { "" }
                ));
                self.v11 = true;
                self.got_reply = false;
                self.restart();
                return;
            }
        }
        self.process_message(msg);
    }

    fn fall_back_to_xml(&mut self, why: String) {
        self.warn(format!("server refused WBXML ({why}); session redone in XML"));
        self.encoding = Encoding::Xml;
        self.encoding_fallback = true;
        self.restart();
    }

    fn process_message(&mut self, msg: Message) {
        let hdr = &msg.hdr;
        if hdr.session_id.trim() != self.cfg.session_id.trim() {
            // Statuses of another session must never be taken for ours.
            let got: String = hdr.session_id.chars().take(64).collect();
            self.fail(SessionError::Protocol(format!("server answered with SessionID {got:?}, ours is {:?}", self.cfg.session_id)));
            return;
        }
        if let Some(r) = &hdr.resp_uri {
            let http = |u: &str| {
                let l = u.get(..8).unwrap_or(u).to_ascii_lowercase();
                l.starts_with("http://") || l.starts_with("https://")
            };
            if !http(r) || r.len() > MAX_RESP_URI || r.chars().any(|c| c.is_control() || c == ' ') {
                let shown: String = r.chars().take(100).collect();
                self.fail(SessionError::Protocol(format!("server's RespURI {shown:?} ({} bytes) is not a usable HTTP(S) URL", r.len())));
                return;
            }
            let https = |u: &str| u.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"));
            if https(&self.url) && !https(r) {
                // Never leave TLS because the server says so.
                self.fail(SessionError::Protocol(format!("server's RespURI {r:?} would leave HTTPS")));
                return;
            }
            if *r != self.url && self.messages_sent > 1 && self.url != self.cfg.server_url {
                let w = format!("server changed RespURI mid-session to {r}");
                self.warn(w);
            }
            self.url = r.clone();
        }
        if let Some(m) = &hdr.meta {
            if let Some(v) = m.max_msg_size {
                self.server_max_msg_size = Some(v);
            }
            if let Some(v) = m.max_obj_size {
                self.server_max_obj_size = Some(v);
            }
        }
        let msg_id = hdr.msg_id.clone();
        let respond = !hdr.no_resp;

        // First pass: the SyncHdr status decides about authentication.
        for c in &msg.body {
            if let Command::Status(s) = c {
                if s.cmd_ref == "0" || s.cmd == "SyncHdr" {
                    if let Some(ch) = &s.chal {
                        self.take_chal(ch);
                    }
                    match s.data {
                        200 | 212 => self.send_cred = false,
                        401 | 407 => {
                            let retry_chal = s.chal.as_ref().filter(|_| !self.auth_retried && self.stage == Stage::Init);
                            if let Some(chal) = retry_chal {
                                if let Err(e) = self.prepare_auth_retry(chal) {
                                    self.fail(e);
                                } else {
                                    self.our_final_sent = false;
                                }
                            } else {
                                self.fail(SessionError::AuthenticationFailed { status: s.data });
                            }
                            return;
                        }
                        st if !(100..300).contains(&st) => {
                            self.fail(SessionError::ServerError { status: st, cmd: "SyncHdr".into() });
                            return;
                        }
                        _ => {}
                    }
                }
            }
        }

        if respond {
            self.statuses.push_back(QueuedStatus::Ready(Status {
                msg_ref: msg_id.clone(),
                cmd_ref: "0".into(),
                cmd: "SyncHdr".into(),
                target_refs: vec![hdr.target.loc_uri.clone()],
                source_refs: vec![hdr.source.loc_uri.clone()],
                data: 200,
                ..Status::default()
            }));
        }

        let mut only_statuses = true;
        let mut new_items: BTreeMap<usize, Vec<ServerItem>> = BTreeMap::new();
        for c in msg.body {
            if !matches!(c, Command::Status(_)) {
                only_statuses = false;
            }
            match c {
                Command::Status(s) => self.handle_status(s),
                Command::Alert(a) => self.handle_alert(&msg_id, respond, a),
                Command::Results(r) => {
                    self.take_devinf(&r.items);
                    if respond {
                        self.queue_status(&msg_id, "Results", &r.cmd_id, None, first_source(&r.items), 200);
                    }
                }
                Command::Put(p) => {
                    self.take_devinf(&p.items);
                    if respond && !p.no_resp {
                        self.queue_status(&msg_id, "Put", &p.cmd_id, None, first_source(&p.items), 200);
                    }
                }
                Command::Get(g) => {
                    let target = g.items.first().and_then(|i| i.target.as_ref()).map(|t| t.loc_uri.clone());
                    let is_devinf = target.as_deref().is_some_and(|t| same_uri(t, DEVINF_URI) || same_uri(t, "./devinf11"));
                    if respond && !g.no_resp {
                        self.queue_status(&msg_id, "Get", &g.cmd_id, target.clone(), None, if is_devinf { 200 } else { 404 });
                    }
                    if is_devinf {
                        self.results_to_send.push(Results {
                            msg_ref: Some(msg_id.clone()),
                            cmd_ref: g.cmd_id.clone(),
                            meta: Some(Meta::with_type(self.encoding.devinf_type())),
                            items: vec![Item {
                                source: Some(Location::new(self.devinf_uri())),
                                data: Some(ItemData::DevInf(Box::new(self.our_devinf()))),
                                ..Item::default()
                            }],
                            ..Results::default()
                        });
                    }
                }
                Command::Sync(s) => self.handle_sync(&msg_id, respond, s, &mut new_items),
                other => {
                    self.warn(format!("server sent unsupported command {} (CmdID {}); answered 406", other.name(), other.cmd_id()));
                    if respond && !other.no_resp() {
                        let name = other.name().to_string();
                        self.queue_status(&msg_id, &name, other.cmd_id(), None, None, 406);
                    }
                }
            }
            if self.failed.is_some() {
                return;
            }
        }

        for (idx, items) in new_items {
            if items.is_empty() {
                continue;
            }
            let st = &mut self.stores[idx];
            st.server_items_received += items.len() as u32;
            st.awaiting_results.extend(items.iter().map(|i| i.handle));
            self.events.push_back(Event::ServerItems { store: st.cfg.local_uri.clone(), items });
        }

        // Package bookkeeping.
        if msg.final_ && self.our_final_sent {
            match self.stage {
                Stage::Init => {
                    self.stage = Stage::Sync;
                    self.our_final_sent = false;
                    for i in 0..self.stores.len() {
                        let st = &mut self.stores[i];
                        if st.phase == StorePhase::Alerted && st.error.is_none() {
                            st.error = Some(if st.alert_status == 0 {
                                "server neither answered nor alerted this store".to_string()
                            } else {
                                format!("server did not send an Alert for this store (our Alert got {})", st.alert_status)
                            });
                        }
                    }
                    let active = self.stores.iter().any(|s| s.error.is_none());
                    if !active && !self.stores.is_empty() {
                        let s = &self.stores[0];
                        let e = SessionError::StoreRejected { store: s.cfg.local_uri.clone(), status: s.alert_status };
                        self.fail(e);
                    }
                }
                Stage::Sync | Stage::Map => {
                    if self.needs_reply() {
                        self.stage = Stage::Map;
                        self.our_final_sent = false;
                    } else {
                        self.done = true;
                    }
                }
            }
        } else if !msg.final_ && only_statuses && self.our_final_sent && self.stage == Stage::Map && !self.needs_reply() {
            self.warn("server's last message lacks Final; treating the session as finished".into());
            self.done = true;
        }
    }

    fn take_chal(&mut self, ch: &Chal) {
        if let Some(n) = &ch.meta.next_nonce {
            let raw = if ch.meta.format.as_deref().unwrap_or("b64").eq_ignore_ascii_case("b64") {
                auth::decode_nonce(n).unwrap_or_else(|| n.as_bytes().to_vec())
            } else {
                n.as_bytes().to_vec()
            };
            self.next_nonce = Some(raw);
        }
    }

    fn prepare_auth_retry(&mut self, chal: &Chal) -> Result<(), SessionError> {
        let Some(creds) = self.cfg.credentials.as_mut() else {
            return Err(SessionError::AuthenticationFailed { status: 401 });
        };
        creds.auth = match chal.meta.type_.as_deref() {
            Some(AUTH_BASIC) => AuthType::Basic,
            Some(AUTH_MD5) | None => AuthType::Md5,
            Some(other) => return Err(SessionError::Protocol(format!("server demands unsupported authentication {other:?}"))),
        };
        if let Some(n) = &self.next_nonce {
            creds.nonce = Some(n.clone());
        }
        self.auth_retried = true;
        self.send_cred = true;
        self.statuses.clear();
        self.events.clear();
        self.results_to_send.clear();
        Ok(())
    }

    fn take_devinf(&mut self, items: &[Item]) {
        for i in items {
            if let Some(ItemData::DevInf(d)) = &i.data {
                self.server_devinf = Some((**d).clone());
            }
        }
    }

    fn queue_status(&mut self, msg_ref: &str, cmd: &str, cmd_ref: &str, target: Option<String>, source: Option<String>, code: u16) {
        self.statuses.push_back(QueuedStatus::Ready(Status {
            msg_ref: msg_ref.to_string(),
            cmd_ref: cmd_ref.to_string(),
            cmd: cmd.to_string(),
            target_refs: target.into_iter().collect(),
            source_refs: source.into_iter().collect(),
            data: code,
            ..Status::default()
        }));
    }

    fn handle_status(&mut self, s: Status) {
        if let Some(ch) = &s.chal {
            self.take_chal(ch);
        }
        if s.cmd_ref == "0" || s.cmd == "SyncHdr" {
            return; // handled in the first pass
        }
        let msg_ref = if s.msg_ref.is_empty() { self.last_sent_msg_id.clone() } else { s.msg_ref.clone() };
        let key = (msg_ref.clone(), s.cmd_ref.clone());
        let Some(sent) = self.sent.get(&key).cloned() else {
            self.warn(format!("status {} for unknown command {} (MsgRef {msg_ref}, CmdRef {})", s.data, s.cmd, s.cmd_ref));
            return;
        };
        let code = s.data;
        match sent {
            SentCmd::Put | SentCmd::Get | SentCmd::Results | SentCmd::Alert222 => {
                if code >= 300 {
                    self.warn(format!("server answered {} with status {code}", s.cmd));
                }
            }
            SentCmd::Alert(idx) => {
                let st = &mut self.stores[idx];
                st.alert_status = code;
                if code >= 300 && code != 508 && st.error.is_none() {
                    st.error = Some(format!("server rejected our Alert with status {code}"));
                }
            }
            SentCmd::Sync(idx) => {
                let st = &mut self.stores[idx];
                if st.sync_status.is_none() || (code >= 300 && st.sync_status.is_some_and(|c| c < 300)) {
                    st.sync_status = Some(code);
                }
                if code >= 300 && st.error.is_none() {
                    st.error = Some(format!("server rejected our Sync with status {code}"));
                }
            }
            SentCmd::Items { store, results } => {
                self.item_status(store, &results, &s);
                if code == 420 {
                    self.store_full(store);
                }
            }
            SentCmd::Chunk { store, result_idx } => {
                if code == 213 || (200..300).contains(&code) {
                    return; // chunk buffered by the server
                }
                // The server rejected part of a large object: the item failed.
                let st = &mut self.stores[store];
                let r = &mut st.item_results[result_idx];
                if r.status == 0 {
                    r.status = code;
                    r.error = Some(format!("server rejected a chunk of this large object ({code}: {})", status_description(code)));
                }
                st.outgoing.retain(|c| c.result_idx != result_idx);
                if code == 420 {
                    self.store_full(store);
                }
            }
            SentCmd::Map(idx) => {
                let st = &mut self.stores[idx];
                st.unacked_maps = st.unacked_maps.saturating_sub(1);
                if code >= 300 {
                    let w = format!("{}: server answered our Map with status {code}", st.cfg.local_uri);
                    self.warn(w);
                }
            }
        }
    }

    /// Attribute the status `s` for an Add/Replace/Delete we sent to its items
    /// (`results`). A status for a command of one item is that item's. For a
    /// command of several items the server answers per item or for several at
    /// once, naming them by SourceRef (our LUID; TargetRef if it gives no
    /// SourceRef); a status naming none is the whole command's.
    fn item_status(&mut self, store: usize, results: &[usize], s: &Status) {
        let code = s.data;
        let refs = if s.source_refs.is_empty() { &s.target_refs } else { &s.source_refs };
        let mut warnings = Vec::new();
        let rs = &mut self.stores[store].item_results;
        if results.len() == 1 || refs.is_empty() {
            for &i in results {
                record_item_status(&mut rs[i], code, &mut warnings);
            }
        } else {
            for luid in refs {
                let mut same = results.iter().copied().filter(|&i| rs[i].luid == *luid);
                let Some(first) = same.next() else {
                    let w = format!("status {code} for {} names {luid:?}, which that command did not carry", s.cmd);
                    warnings.push(w);
                    continue;
                };
                // A LUID twice in one command: the first item still without a status.
                let i = if rs[first].status == 0 { first } else { same.find(|&i| rs[i].status == 0).unwrap_or(first) };
                record_item_status(&mut rs[i], code, &mut warnings);
            }
        }
        for w in warnings {
            self.warn(w);
        }
    }

    /// The server's datastore is full (420): send nothing more to it.
    fn store_full(&mut self, idx: usize) {
        let st = &mut self.stores[idx];
        if st.full {
            return;
        }
        st.full = true;
        let unsent: Vec<OutChange> = st.outgoing.drain(..).collect();
        for c in &unsent {
            let r = &mut st.item_results[c.result_idx];
            r.error = Some("not sent: the server's datastore is full (420)".into());
        }
        if st.error.is_none() {
            st.error = Some(format!("the server's datastore is full (status 420); {} changes not sent", unsent.len()));
        }
        let w = format!("{}: server datastore full (420); {} changes not sent", st.cfg.local_uri, unsent.len());
        self.warn(w);
    }

    fn find_store_for(&self, target: Option<&Location>, source: Option<&Location>) -> Option<usize> {
        if let Some(t) = target {
            if let Some(i) = self.stores.iter().position(|s| same_uri(&s.cfg.local_uri, &t.loc_uri)) {
                return Some(i);
            }
        }
        if let Some(src) = source {
            return self.stores.iter().position(|s| same_uri(&s.cfg.remote_uri, &src.loc_uri));
        }
        None
    }

    fn handle_alert(&mut self, msg_id: &str, respond: bool, a: Alert) {
        let respond = respond && !a.no_resp;
        let code = a.data.unwrap_or(0);
        let item = a.items.first();
        let target = item.and_then(|i| i.target.as_ref()).map(|l| l.loc_uri.clone());
        let source = item.and_then(|i| i.source.as_ref()).map(|l| l.loc_uri.clone());
        let Some(mode) = SyncMode::from_code(code) else {
            let status = match code {
                222 => 200,
                _ => {
                    self.warn(format!("server sent unsupported Alert {code}; answered 406"));
                    406
                }
            };
            if respond {
                self.queue_status(msg_id, "Alert", &a.cmd_id, target, source, status);
            }
            return;
        };
        let idx = self.find_store_for(item.and_then(|i| i.target.as_ref()), item.and_then(|i| i.source.as_ref()));
        let status = match idx {
            None => {
                self.warn(format!("server alerted unknown store {target:?}/{source:?}; answered 404"));
                404
            }
            Some(idx) => {
                let st = &mut self.stores[idx];
                if st.phase != StorePhase::Alerted {
                    let w = format!("{}: duplicate Alert {code} from server ignored", st.cfg.local_uri);
                    self.warn(w);
                } else {
                    st.agreed = Some(mode);
                    if st.error.is_none() {
                        st.phase = StorePhase::NeedChanges;
                        let store = st.cfg.local_uri.clone();
                        let requested = requested_mode(&st.cfg);
                        if mode != requested {
                            let w = format!("{store}: requested {requested:?}, server chose {mode:?}");
                            self.warn(w);
                        }
                        self.events.push_back(Event::NeedChanges { store, mode });
                    }
                }
                200
            }
        };
        if respond {
            let next = item.and_then(|i| i.meta.as_ref()).and_then(|m| m.anchor.as_ref()).and_then(|an| an.next.clone());
            let mut s = Status {
                msg_ref: msg_id.to_string(),
                cmd_ref: a.cmd_id.clone(),
                cmd: "Alert".into(),
                target_refs: target.into_iter().collect(),
                source_refs: source.into_iter().collect(),
                data: status,
                ..Status::default()
            };
            if status == 200 && next.is_some() {
                s.items.push(Item { data: Some(ItemData::Anchor(Anchor { last: None, next })), ..Item::default() });
            }
            self.statuses.push_back(QueuedStatus::Ready(s));
        }
    }

    fn handle_sync(&mut self, msg_id: &str, respond: bool, s: Sync, new_items: &mut BTreeMap<usize, Vec<ServerItem>>) {
        let idx = self.find_store_for(s.target.as_ref(), s.source.as_ref());
        let usable = idx.filter(|&i| self.stores[i].error.is_none() && self.stores[i].agreed.is_some());
        let sync_status = if usable.is_some() { 200 } else { 404 };
        if idx.is_none() {
            self.warn(format!("server sent Sync for unknown store {:?}; answered 404", s.target.as_ref().map(|t| &t.loc_uri)));
        }
        let respond_sync = respond && !s.no_resp;
        if respond_sync {
            self.queue_status(
                msg_id,
                "Sync",
                &s.cmd_id,
                s.target.as_ref().map(|l| l.loc_uri.clone()),
                s.source.as_ref().map(|l| l.loc_uri.clone()),
                sync_status,
            );
        }
        let sync_type = s.meta.as_ref().and_then(|m| m.type_.clone());
        for c in s.commands {
            let respond_cmd = respond && !c.no_resp();
            let (kind, cmd) = match c {
                Command::Add(c) => (ItemKind::Add, c),
                Command::Replace(c) => (ItemKind::Replace, c),
                Command::Delete(c) => (ItemKind::Delete, c),
                other => {
                    self.warn(format!("unsupported {} inside Sync; answered 406", other.name()));
                    if respond_cmd {
                        let name = other.name().to_string();
                        self.queue_status(msg_id, &name, other.cmd_id(), None, None, 406);
                    }
                    continue;
                }
            };
            let cmd_type = cmd.meta.as_ref().and_then(|m| m.type_.clone()).or_else(|| sync_type.clone());
            let cmd_size = cmd.meta.as_ref().and_then(|m| m.size);
            for item in cmd.items {
                let server_id = item.source.as_ref().map(|l| l.loc_uri.clone()).unwrap_or_default();
                let mut local_id = item.target.as_ref().map(|l| l.loc_uri.clone()).filter(|s| !s.is_empty());
                let template = Status {
                    msg_ref: msg_id.to_string(),
                    cmd_ref: cmd.cmd_id.clone(),
                    cmd: kind.cmd_name().to_string(),
                    target_refs: local_id.iter().cloned().collect(),
                    source_refs: item.source.iter().map(|l| l.loc_uri.clone()).collect(),
                    ..Status::default()
                };
                let Some(idx) = usable else {
                    if respond_cmd {
                        self.statuses.push_back(QueuedStatus::Ready(Status { data: 404, ..template }));
                    }
                    continue;
                };
                let mut content_type = item.meta.as_ref().and_then(|m| m.type_.clone()).or_else(|| cmd_type.clone());
                let data = match item.data {
                    Some(ItemData::Bytes(b)) => b,
                    Some(_) | None => Vec::new(),
                };
                // Large object reassembly.
                let mut data = data;
                if let Some(ch) = self.chunk.take() {
                    if ch.store == idx && ch.server_id == server_id && ch.kind == kind {
                        let mut acc = ch;
                        acc.data.extend_from_slice(&data);
                        if acc.data.len() as u64 > u64::from(self.cfg.max_obj_size) {
                            self.warn(format!("chunked item {server_id} exceeds our MaxObjSize; answered 413"));
                            if respond_cmd {
                                self.statuses.push_back(QueuedStatus::Ready(Status { data: 413, ..template }));
                            }
                            continue;
                        }
                        if item.more_data {
                            self.chunk = Some(acc);
                            if respond_cmd {
                                self.statuses.push_back(QueuedStatus::Ready(Status { data: 213, ..template }));
                            }
                            continue;
                        }
                        if let Some(sz) = acc.declared_size {
                            if sz != acc.data.len() as u64 {
                                self.warn(format!("chunked item {server_id}: declared size {sz}, received {}; answered 424", acc.data.len()));
                                if respond_cmd {
                                    self.statuses.push_back(QueuedStatus::Ready(Status { data: 424, ..template }));
                                }
                                continue;
                            }
                        }
                        data = acc.data;
                        local_id = local_id.or(acc.local_id);
                        content_type = acc.content_type.or(content_type);
                    } else {
                        self.warn(format!("incomplete chunked item {} dropped: server sent {server_id} instead", ch.server_id));
                    }
                }
                if item.more_data {
                    let declared_size = item.meta.as_ref().and_then(|m| m.size).or(cmd_size);
                    if declared_size.is_some_and(|sz| sz > u64::from(self.cfg.max_obj_size)) {
                        self.warn(format!("chunked item {server_id} announces {} bytes, more than our MaxObjSize; answered 413", declared_size.unwrap_or(0)));
                        if respond_cmd {
                            self.statuses.push_back(QueuedStatus::Ready(Status { data: 413, ..template }));
                        }
                        continue;
                    }
                    self.chunk = Some(ChunkBuf {
                        store: idx,
                        kind,
                        server_id,
                        local_id,
                        content_type,
                        declared_size,
                        data,
                    });
                    if respond_cmd {
                        self.statuses.push_back(QueuedStatus::Ready(Status { data: 213, ..template }));
                    }
                    continue;
                }
                if data.len() as u64 > u64::from(self.cfg.max_obj_size) {
                    // Not chunked, yet bigger than what we announced we accept.
                    self.warn(format!("item {server_id} of {} bytes exceeds our MaxObjSize; answered 413", data.len()));
                    if respond_cmd {
                        self.statuses.push_back(QueuedStatus::Ready(Status { data: 413, ..template }));
                    }
                    continue;
                }
                let handle = self.next_handle;
                self.next_handle += 1;
                self.pending_items.insert(handle, PendingItem { template, server_id: server_id.clone(), status: None });
                if respond_cmd {
                    self.statuses.push_back(QueuedStatus::ServerItem(handle));
                }
                new_items.entry(idx).or_default().push(ServerItem { handle, kind, server_id, local_id, data, content_type });
            }
        }
    }

    /// Do we owe the server anything beyond SyncHdr statuses?
    fn needs_reply(&self) -> bool {
        let statuses = self.statuses.iter().any(|q| match q {
            QueuedStatus::Ready(s) => s.cmd != "SyncHdr",
            QueuedStatus::ServerItem(_) => true,
        });
        statuses
            || !self.results_to_send.is_empty()
            || self.stores.iter().any(|s| !s.pending_map.is_empty() || (s.sends_sync() && !s.sync_done()))
            || self.chunk.is_some()
    }

    // ------------------------------------------------------------ sending

    fn message_limit(&self) -> u64 {
        // The server's MaxMsgSize bounds what we send; we never send more
        // than our own either (it is also what we accept).
        let ours = u64::from(self.cfg.max_msg_size);
        let limit = self.server_max_msg_size.map_or(ours, |srv| srv.min(ours));
        // A small fixed headroom (see MESSAGE_HEADROOM). The result is never
        // above the limit, except for an absurd one below MIN_MESSAGE_LIMIT,
        // which is raised to it: with room for one status per message we
        // would never catch up with the SyncHdr statuses the server's
        // answers add.
        limit.saturating_sub(MESSAGE_HEADROOM).max(MIN_MESSAGE_LIMIT)
    }

    fn header(&mut self, msg_id: u32) -> SyncHdr {
        let cred = if self.send_cred {
            self.cfg.credentials.as_ref().map(|c| match c.auth {
                AuthType::Basic => Cred {
                    meta: Meta { format: Some("b64".into()), type_: Some(AUTH_BASIC.into()), ..Meta::default() },
                    data: auth::basic(&c.username, &c.password),
                },
                AuthType::Md5 => Cred {
                    meta: Meta { format: Some("b64".into()), type_: Some(AUTH_MD5.into()), ..Meta::default() },
                    data: auth::md5(&c.username, &c.password, c.nonce.as_deref().unwrap_or_default()),
                },
            })
        } else {
            None
        };
        SyncHdr {
            ver_dtd: self.ver_dtd().into(),
            ver_proto: self.ver_proto().into(),
            session_id: self.cfg.session_id.clone(),
            msg_id: msg_id.to_string(),
            target: Location::new(self.url.clone()),
            source: Location {
                loc_uri: self.cfg.device_id.clone(),
                loc_name: self.cfg.credentials.as_ref().map(|c| c.username.clone()),
            },
            resp_uri: None,
            no_resp: false,
            cred,
            meta: Some(Meta {
                max_msg_size: Some(u64::from(self.cfg.max_msg_size)),
                max_obj_size: Some(u64::from(self.cfg.max_obj_size)),
                ..Meta::default()
            }),
        }
    }

    fn item_command(&self, idx: usize, kind: ItemKind, luid: &str, data: &[u8], cmd_id: &str) -> Command {
        self.chunk_command(idx, kind, luid, data, None, false, cmd_id)
    }

    /// The `Item` of a change (Source = our LUID, Data unless a Delete).
    fn change_item(kind: ItemKind, luid: &str, data: &[u8], more: bool) -> Item {
        Item {
            source: Some(Location::new(luid)),
            data: if kind == ItemKind::Delete { None } else { Some(ItemData::Bytes(data.to_vec())) },
            more_data: more,
            ..Item::default()
        }
    }

    /// An item command; for a large object chunk with `Meta/Size` (first
    /// chunk: the whole object's size) and `MoreData` (all but the last).
    #[allow(clippy::too_many_arguments)]
    fn chunk_command(&self, idx: usize, kind: ItemKind, luid: &str, data: &[u8], size: Option<u64>, more: bool, cmd_id: &str) -> Command {
        let st = &self.stores[idx];
        let c = ItemCmd {
            cmd_id: cmd_id.to_string(),
            meta: Some(Meta { type_: Some(st.content_type.clone()), size, ..Meta::default() }),
            items: vec![Self::change_item(kind, luid, data, more)],
            ..ItemCmd::default()
        };
        match kind {
            ItemKind::Add => Command::Add(c),
            ItemKind::Replace => Command::Replace(c),
            ItemKind::Delete => Command::Delete(c),
        }
    }

    fn sync_shell(&self, idx: usize, cmd_id: &str) -> Sync {
        let st = &self.stores[idx];
        Sync {
            cmd_id: cmd_id.to_string(),
            target: Some(Location::new(st.cfg.remote_uri.clone())),
            source: Some(Location::new(st.cfg.local_uri.clone())),
            number_of_changes: st.number_of_changes,
            ..Sync::default()
        }
    }

    /// Largest encoded item command that fits into an otherwise empty message.
    fn max_item_room(&self, idx: usize) -> u64 {
        let mut probe = Message { hdr: self.header_probe(), body: Vec::new(), final_: true };
        probe.body.push(Command::Status(Status {
            cmd_id: "1".into(),
            msg_ref: "99999".into(),
            cmd_ref: "0".into(),
            cmd: "SyncHdr".into(),
            target_refs: vec![self.cfg.device_id.clone()],
            source_refs: vec![self.url.clone()],
            data: 200,
            ..Status::default()
        }));
        probe.body.push(Command::Sync(self.sync_shell(idx, "99999")));
        self.message_limit().saturating_sub(self.encoding.encode(&probe).len() as u64)
    }

    /// The next chunk of large object `ch` that fits into `room` bytes:
    /// (command, its encoded size, data bytes taken, last chunk?). `None` if
    /// less than [`MIN_CHUNK`] bytes of data would fit.
    fn next_chunk(&self, idx: usize, ch: &OutChange, room: u64, cmd_id: &str) -> Option<(Command, u64, usize, bool)> {
        let rest = &ch.data[ch.offset..];
        let size = (ch.offset == 0).then_some(ch.data.len() as u64);
        let shell = self.encoding.encoded_command_len(&self.chunk_command(idx, ch.kind, &ch.luid, &[], size, true, cmd_id)) as u64;
        // OPAQUE length / CDATA markers.
        let overhead = shell + 16;
        if room < overhead + MIN_CHUNK.min(rest.len() as u64) {
            return None;
        }
        let mut n = rest.len().min((room - overhead) as usize);
        for _ in 0..64 {
            if self.encoding == Encoding::Xml {
                // XML carries text: never split a UTF-8 sequence.
                while n > 0 && n < rest.len() && (rest[n] & 0xC0) == 0x80 {
                    n -= 1;
                }
            }
            if n == 0 {
                return None;
            }
            let last = n == rest.len();
            let cmd = self.chunk_command(idx, ch.kind, &ch.luid, &rest[..n], size, !last, cmd_id);
            let len = self.encoding.encoded_command_len(&cmd) as u64;
            if len <= room {
                return Some((cmd, len, n, last));
            }
            let excess = (len - room) as usize;
            if excess >= n {
                return None;
            }
            // Escaping may grow the text: shrink a bit more than the excess.
            n -= excess.max(n / 16).min(n - 1).max(1);
        }
        None
    }

    fn header_probe(&self) -> SyncHdr {
        SyncHdr {
            ver_dtd: self.ver_dtd().into(),
            ver_proto: self.ver_proto().into(),
            session_id: self.cfg.session_id.clone(),
            msg_id: "99999".into(),
            target: Location::new(self.url.clone()),
            source: Location {
                loc_uri: self.cfg.device_id.clone(),
                loc_name: self.cfg.credentials.as_ref().map(|c| c.username.clone()),
            },
            meta: Some(Meta {
                max_msg_size: Some(u64::from(self.cfg.max_msg_size)),
                max_obj_size: Some(u64::from(self.cfg.max_obj_size)),
                ..Meta::default()
            }),
            ..SyncHdr::default()
        }
    }

    /// `Alert 222` ("next message"): what we send while the server's package
    /// is in progress.
    fn alert_222(&self, cmd_id: String) -> Command {
        Command::Alert(Alert {
            cmd_id,
            data: Some(222),
            items: vec![Item {
                target: Some(Location::new(self.url.clone())),
                source: Some(Location::new(self.cfg.device_id.clone())),
                ..Item::default()
            }],
            ..Alert::default()
        })
    }

    /// The next message, and (but for package 1, which is never split) its
    /// accounted size: an upper bound of its encoded size, at most the
    /// message limit unless a single command does not fit any message.
    fn build_message(&mut self) -> (Message, Option<u64>) {
        let msg_id_n = self.next_msg_id;
        self.next_msg_id += 1;
        let msg_id = msg_id_n.to_string();
        let hdr = self.header(msg_id_n);
        let mut msg = Message { hdr, body: Vec::new(), final_: false };
        let mut cmd_no: u32 = 0;
        macro_rules! next_cmd_id {
            () => {{
                cmd_no += 1;
                cmd_no.to_string()
            }};
        }

        if self.stage == Stage::Init && !self.our_final_sent {
            // Package 1 (or its retry after a 401): always a single message.
            self.sent.clear();
            let devinf_type = self.encoding.devinf_type();
            let devinf_uri = self.devinf_uri();
            if self.cfg.send_devinf {
                let id = next_cmd_id!();
                msg.body.push(Command::Put(PutGet {
                    cmd_id: id.clone(),
                    meta: Some(Meta::with_type(devinf_type)),
                    items: vec![Item {
                        source: Some(Location::new(devinf_uri)),
                        data: Some(ItemData::DevInf(Box::new(self.our_devinf()))),
                        ..Item::default()
                    }],
                    ..PutGet::default()
                }));
                self.sent.insert((msg_id.clone(), id), SentCmd::Put);
            }
            if self.cfg.known_server_devinf.is_none() {
                let id = next_cmd_id!();
                msg.body.push(Command::Get(PutGet {
                    cmd_id: id.clone(),
                    meta: Some(Meta::with_type(devinf_type)),
                    items: vec![Item { target: Some(Location::new(devinf_uri)), ..Item::default() }],
                    ..PutGet::default()
                }));
                self.sent.insert((msg_id.clone(), id), SentCmd::Get);
            }
            for (i, st) in self.stores.iter().enumerate() {
                let id = next_cmd_id!();
                msg.body.push(Command::Alert(Alert {
                    cmd_id: id.clone(),
                    data: Some(requested_mode(&st.cfg).code()),
                    items: vec![Item {
                        target: Some(Location::new(st.cfg.remote_uri.clone())),
                        source: Some(Location::new(st.cfg.local_uri.clone())),
                        meta: Some(Meta {
                            anchor: Some(Anchor {
                                last: st.cfg.last_anchor.clone().filter(|l| !l.is_empty()),
                                next: Some(st.cfg.next_anchor.clone()),
                            }),
                            max_obj_size: Some(u64::from(self.cfg.max_obj_size)),
                            ..Meta::default()
                        }),
                        ..Item::default()
                    }],
                    ..Alert::default()
                }));
                self.sent.insert((msg_id.clone(), id), SentCmd::Alert(i));
            }
            msg.final_ = true;
            self.our_final_sent = true;
            self.last_sent_msg_id = msg_id;
            return (msg, None);
        }

        let limit = self.message_limit();
        let enc = self.encoding;
        let mut size = {
            let mut probe = msg.clone();
            probe.final_ = true;
            enc.encode(&probe).len() as u64
        };
        let fits = |size: u64, add: usize, empty: bool| empty || size + add as u64 <= limit;
        if self.our_final_sent {
            // Room for the Alert 222 that follows the statuses (CmdID of the
            // widest possible width).
            size += enc.encoded_command_len(&self.alert_222(u32::MAX.to_string())) as u64;
        }

        // 1. Statuses we owe, in the order of the server's commands.
        while let Some(q) = self.statuses.front() {
            let mut s = match q {
                QueuedStatus::Ready(s) => s.clone(),
                QueuedStatus::ServerItem(h) => match self.pending_items.get(h) {
                    Some(p) => Status { data: p.status.unwrap_or(500), ..p.template.clone() },
                    None => {
                        self.statuses.pop_front();
                        continue;
                    }
                },
            };
            s.cmd_id = (cmd_no + 1).to_string();
            let cmd = Command::Status(s);
            let len = enc.encoded_command_len(&cmd);
            if !fits(size, len, msg.body.is_empty()) {
                break;
            }
            if let Some(QueuedStatus::ServerItem(h)) = self.statuses.pop_front() {
                self.pending_items.remove(&h);
            }
            next_cmd_id!();
            size += len as u64;
            msg.body.push(cmd);
        }
        let statuses_left = !self.statuses.is_empty();

        if self.our_final_sent {
            // The server's package is still in progress: ask for more.
            let id = next_cmd_id!();
            msg.body.push(self.alert_222(id.clone()));
            self.sent.insert((msg_id.clone(), id), SentCmd::Alert222);
            self.last_sent_msg_id = msg_id;
            return (msg, Some(size));
        }

        // 2. Results (our DevInf, if the server asked).
        while !statuses_left && !self.results_to_send.is_empty() {
            let mut r = self.results_to_send[0].clone();
            r.cmd_id = (cmd_no + 1).to_string();
            let cmd = Command::Results(r);
            let len = enc.encoded_command_len(&cmd);
            if !fits(size, len, msg.body.is_empty()) {
                break;
            }
            self.results_to_send.remove(0);
            let id = next_cmd_id!();
            self.sent.insert((msg_id.clone(), id), SentCmd::Results);
            size += len as u64;
            msg.body.push(cmd);
        }
        let mut full = statuses_left || !self.results_to_send.is_empty();

        // 3. Maps (only in the map stage, after the server's package 4).
        if self.stage == Stage::Map {
            for idx in 0..self.stores.len() {
                if full || self.stores[idx].pending_map.is_empty() {
                    continue;
                }
                let st = &self.stores[idx];
                let mut map = Map {
                    cmd_id: (cmd_no + 1).to_string(),
                    target: Location::new(st.cfg.remote_uri.clone()),
                    source: Location::new(st.cfg.local_uri.clone()),
                    ..Map::default()
                };
                let shell = enc.encoded_command_len(&Command::Map(map.clone()));
                let mut total = shell;
                let mut taken = 0;
                for mi in &st.pending_map {
                    let one = enc.encoded_command_len(&Command::Map(Map { items: vec![mi.clone()], ..map.clone() })) - shell;
                    if !fits(size, total + one, msg.body.is_empty() && taken == 0) {
                        break;
                    }
                    total += one;
                    taken += 1;
                }
                if taken == 0 {
                    full = true;
                    break;
                }
                let st = &mut self.stores[idx];
                map.items = st.pending_map.drain(..taken).collect();
                if !st.pending_map.is_empty() {
                    full = true;
                }
                st.unacked_maps += 1;
                let id = next_cmd_id!();
                self.sent.insert((msg_id.clone(), id), SentCmd::Map(idx));
                size += total as u64;
                msg.body.push(Command::Map(map));
            }
        }

        // 4. Our Syncs (package 3).
        if self.stage == Stage::Sync {
            for idx in 0..self.stores.len() {
                if full {
                    break;
                }
                if !self.stores[idx].sends_sync() || self.stores[idx].sync_done() {
                    continue;
                }
                let sync_id = (cmd_no + 1).to_string();
                let mut sync = self.sync_shell(idx, &sync_id);
                let shell_len = enc.encoded_command_len(&Command::Sync(sync.clone())) as u64;
                if size + shell_len > limit && !msg.body.is_empty() {
                    break;
                }
                let mut total = shell_len;
                let mut ids = cmd_no + 1;
                // (CmdID, what) of each command in `sync.commands`, in order.
                let mut sent_items = Vec::new();
                let empty_room = self.max_item_room(idx);
                // Consecutive changes of one kind share one command (Item+,
                // Meta/Type once): its CmdID, Meta and the server's Status
                // are paid once per run of changes, not once per change.
                // `open`: the kind of the last command of `sync` while more
                // items may join it (never a large object's chunk).
                let mut open: Option<ItemKind> = None;
                while let Some(mut ch) = self.stores[idx].outgoing.pop_front() {
                    let id = (ids + 1).to_string();
                    let alone = msg.body.is_empty() && sync.commands.is_empty();
                    if ch.offset == 0 {
                        if open == Some(ch.kind) {
                            let item = Self::change_item(ch.kind, &ch.luid, &ch.data, false);
                            let len = enc.encoded_item_len(&item) as u64;
                            if size + total + len <= limit {
                                let cmd = sync.commands.last_mut().and_then(item_cmd_mut);
                                let sent = sent_items.last_mut().and_then(|(_, what)| match what {
                                    SentCmd::Items { results, .. } => Some(results),
                                    _ => None,
                                });
                                let (Some(c), Some(results)) = (cmd, sent) else {
                                    unreachable!("an open command is the last command of the Sync, an item command");
                                };
                                c.items.push(item);
                                results.push(ch.result_idx);
                                total += len;
                                continue;
                            }
                            // Does not fit: nor does a command of its own (below).
                        }
                        let cmd = self.item_command(idx, ch.kind, &ch.luid, &ch.data, &id);
                        let len = enc.encoded_command_len(&cmd) as u64;
                        if size + total + len <= limit || (alone && len <= empty_room) {
                            ids += 1;
                            total += len;
                            sent_items.push((id, SentCmd::Items { store: idx, results: vec![ch.result_idx] }));
                            sync.commands.push(cmd);
                            open = (!self.one_item_per_command).then_some(ch.kind);
                            continue;
                        }
                        if len <= empty_room || ch.kind == ItemKind::Delete {
                            // Fits into a message of its own: next message.
                            self.stores[idx].outgoing.push_front(ch);
                            full = true;
                            break;
                        }
                    }
                    // A large object: send the next chunk into the room left,
                    // in a command of its own.
                    open = None;
                    let room = limit.saturating_sub(size + total);
                    match self.next_chunk(idx, &ch, room, &id) {
                        None if alone => {
                            let r = &mut self.stores[idx].item_results[ch.result_idx];
                            r.status = 413;
                            r.error = Some(format!("item cannot be sent: not even a chunk fits into the server's MaxMsgSize ({limit} bytes usable)"));
                            continue;
                        }
                        None => {
                            self.stores[idx].outgoing.push_front(ch);
                            full = true;
                            break;
                        }
                        Some((cmd, len, n, last)) => {
                            ids += 1;
                            total += len;
                            sync.commands.push(cmd);
                            if last {
                                self.stores[idx].large_objects_sent += 1;
                                sent_items.push((id, SentCmd::Items { store: idx, results: vec![ch.result_idx] }));
                                continue;
                            }
                            // Nothing may follow a chunk in its message.
                            sent_items.push((id, SentCmd::Chunk { store: idx, result_idx: ch.result_idx }));
                            ch.offset += n;
                            self.stores[idx].outgoing.push_front(ch);
                            full = true;
                            break;
                        }
                    }
                }
                if sync.commands.is_empty() && !self.stores[idx].outgoing.is_empty() {
                    // Not even one item fits next to the statuses: next message.
                    break;
                }
                next_cmd_id!();
                self.sent.insert((msg_id.clone(), sync_id), SentCmd::Sync(idx));
                for (id, what) in sent_items {
                    next_cmd_id!();
                    self.sent.insert((msg_id.clone(), id), what);
                }
                self.stores[idx].sync_started = true;
                size += total;
                msg.body.push(Command::Sync(sync));
            }
        }

        let more = !self.statuses.is_empty()
            || !self.results_to_send.is_empty()
            || (self.stage == Stage::Map && self.stores.iter().any(|s| !s.pending_map.is_empty()))
            || (self.stage == Stage::Sync && self.stores.iter().any(|s| s.sends_sync() && !s.sync_done()));
        msg.final_ = !more;
        self.our_final_sent = msg.final_;
        self.last_sent_msg_id = msg_id;
        (msg, Some(size))
    }

    fn build_report(&mut self) -> SessionReport {
        let mut warnings = Vec::new();
        let mut stores = Vec::new();
        for st in &self.stores {
            let mut error = st.error.clone();
            if error.is_none() && st.phase == StorePhase::Active && st.sync_started && st.sync_status.is_none() {
                warnings.push(format!("{}: server sent no status for our Sync", st.cfg.local_uri));
            }
            if st.unacked_maps > 0 {
                warnings.push(format!("{}: {} Map command(s) not acknowledged by the server", st.cfg.local_uri, st.unacked_maps));
            }
            let mut item_results = st.item_results.clone();
            for r in &mut item_results {
                if r.status == 0 && r.error.is_none() {
                    r.error = Some("no status received from the server".into());
                    warnings.push(format!("{}: no status for {} {}", st.cfg.local_uri, r.kind.cmd_name(), r.luid));
                }
            }
            if error.is_none() && !st.outgoing.is_empty() {
                error = Some(format!("{} changes were not sent", st.outgoing.len()));
            }
            stores.push(StoreReport {
                local_uri: st.cfg.local_uri.clone(),
                mode: st.agreed.unwrap_or_else(|| requested_mode(&st.cfg)),
                requested: requested_mode(&st.cfg),
                alert_status: st.alert_status,
                sync_status: st.sync_status,
                item_results,
                server_items_received: st.server_items_received,
                next_anchor: st.cfg.next_anchor.clone(),
                error,
                content_type: st.content_type.clone(),
                content_version: st.content_version.clone(),
                large_objects_sent: st.large_objects_sent,
                server_full: st.full,
            });
        }
        if let Some(ch) = &self.chunk {
            warnings.push(format!("session ended inside chunked item {}", ch.server_id));
        }
        for w in warnings {
            self.warn(w);
        }
        SessionReport {
            stores,
            next_nonce: self.next_nonce.clone(),
            server_devinf: self.server_devinf.clone(),
            messages_sent: self.messages_sent,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            warnings: self.warnings.clone(),
            encoding: self.encoding,
            encoding_fallback: self.encoding_fallback,
            protocol_version: self.ver_dtd().to_string(),
        }
    }
}

/// The mode we alert: a two-way sync without a Last anchor (first contact,
/// or anchors lost) is a slow sync. Nothing else is changed; in particular
/// refresh-from-client (203) is only ever sent when configured.
fn requested_mode(cfg: &StoreConfig) -> SyncMode {
    let no_anchor = cfg.last_anchor.as_deref().is_none_or(|l| l.trim().is_empty());
    if cfg.mode == SyncMode::TwoWay && no_anchor {
        SyncMode::Slow
    } else {
        cfg.mode
    }
}

fn item_cmd_mut(c: &mut Command) -> Option<&mut ItemCmd> {
    match c {
        Command::Add(c) | Command::Replace(c) | Command::Delete(c) => Some(c),
        _ => None,
    }
}

/// Record the server's status `code` for one change we sent (a second one is
/// a warning, the first one stands).
fn record_item_status(r: &mut ClientItemResult, code: u16, warnings: &mut Vec<String>) {
    if r.status != 0 {
        warnings.push(format!("duplicate status {code} for {} {} (had {})", r.kind.cmd_name(), r.luid, r.status));
    } else {
        r.status = code;
    }
}

fn first_source(items: &[Item]) -> Option<String> {
    items.first().and_then(|i| i.source.as_ref()).map(|l| l.loc_uri.clone())
}

#[allow(dead_code)]
fn _assert_codec_error_is_clone(e: codec::DecodeError) -> codec::DecodeError {
    e.clone()
}
