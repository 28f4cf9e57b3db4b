//! Encoding of [`crate::types::Message`] to and from the wire.
//!
//! Layering (so that a WBXML codec can be added as a sibling of `xml`):
//!
//! ```text
//!   bytes  <-- xml.rs (quick-xml) -->  element::Element tree  <-- syncml_map.rs / devinf_map.rs -->  types::Message
//!   bytes  <-- wbxml.rs (later)   -->  element::Element tree  (same mapping)
//! ```
//!
//! `element.rs` is a tiny, encoding-neutral element tree (name, text, children);
//! `syncml_map.rs` and `devinf_map.rs` map it to/from the SyncML and DevInf
//! models. Only `xml.rs` knows about XML syntax.

pub mod devinf_map;
pub mod element;
pub mod syncml_map;
pub mod xml;

/// Maximum element nesting accepted by decoders. A SyncML message with a
/// nested DevInf needs about 12 levels; anything beyond this is hostile.
pub const MAX_DEPTH: usize = 64;

/// Why a message could not be decoded. Positions are byte offsets in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input: no root element")]
    Empty,
    #[error("XML syntax error at byte {position}: {message}")]
    Syntax { position: u64, message: String },
    #[error("input truncated: ends inside <{open_element}> (at byte {position})")]
    Truncated { position: u64, open_element: String },
    #[error("elements nested deeper than {max} levels at byte {position} (<{element}>)")]
    TooDeep { position: u64, element: String, max: usize },
    #[error("invalid UTF-8 in <{element}> at byte {position}")]
    InvalidUtf8 { position: u64, element: String },
    #[error("unexpected content after the root element at byte {position}")]
    TrailingContent { position: u64 },
    #[error("root element is <{found}>, expected <{expected}>")]
    WrongRoot { found: String, expected: &'static str },
    #[error("<{parent}> at byte {position} lacks required <{element}>")]
    MissingElement { parent: String, element: &'static str, position: u64 },
    #[error("<{element}> at byte {position}: {value:?} is not a valid number")]
    InvalidNumber { element: String, value: String, position: u64 },
}
