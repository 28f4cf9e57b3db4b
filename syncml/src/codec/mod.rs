//! Encoding of [`crate::types::Message`] to and from the wire.
//!
//! Layering (so that a WBXML codec can be added as a sibling of `xml`):
//!
//! ```text
//!   bytes  <-- xml.rs (quick-xml) -->  element::Element tree  <-- syncml_map.rs / devinf_map.rs -->  types::Message
//!   bytes  <-- wbxml.rs           -->  element::Element tree  (same mapping)
//! ```
//!
//! `element.rs` is a tiny, encoding-neutral element tree (name, text, children);
//! `syncml_map.rs` and `devinf_map.rs` map it to/from the SyncML and DevInf
//! models. Only `xml.rs` knows about XML syntax and only `wbxml.rs` about WBXML.
//! Item data that is not UTF-8 travels in [`element::Element::opaque`].

pub mod devinf_map;
pub mod element;
pub mod syncml_map;
pub mod wbxml;
pub mod xml;

/// Maximum element nesting accepted by decoders. A SyncML message with a
/// nested DevInf needs about 12 levels; anything beyond this is hostile.
pub const MAX_DEPTH: usize = 64;

/// Why a message could not be decoded. Positions are byte offsets in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input: no root element")]
    Empty,
    #[error("invalid WBXML at byte {position}: {message}")]
    Wbxml { position: u64, message: String },
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
    #[error("root element <{element}> is in namespace {namespace:?}, not a SyncML one (SYNCML:...)")]
    WrongNamespace { element: String, namespace: String },
    #[error("root element is <{found}>, expected <{expected}>")]
    WrongRoot { found: String, expected: &'static str },
    #[error("<{parent}> at byte {position} lacks required <{element}>")]
    MissingElement { parent: String, element: &'static str, position: u64 },
    #[error("<{element}> at byte {position}: {value:?} is not a valid number")]
    InvalidNumber { element: String, value: String, position: u64 },
}

/// Wire encoding of SyncML messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// `application/vnd.syncml+xml`
    Xml,
    /// `application/vnd.syncml+wbxml` (the default: smaller, binary-safe)
    #[default]
    Wbxml,
}

impl Encoding {
    /// HTTP Content-Type of messages in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Xml => xml::CONTENT_TYPE,
            Encoding::Wbxml => wbxml::CONTENT_TYPE,
        }
    }

    /// Meta/Type of a DevInf object in this encoding.
    pub fn devinf_type(self) -> &'static str {
        match self {
            Encoding::Xml => crate::types::DEVINF_XML_TYPE,
            Encoding::Wbxml => wbxml::DEVINF_WBXML_TYPE,
        }
    }

    pub fn encode(self, msg: &crate::types::Message) -> Vec<u8> {
        match self {
            Encoding::Xml => xml::encode(msg),
            Encoding::Wbxml => wbxml::encode(msg),
        }
    }

    pub fn decode(self, input: &[u8]) -> Result<crate::types::Message, DecodeError> {
        match self {
            Encoding::Xml => xml::decode(input),
            Encoding::Wbxml => wbxml::decode(input),
        }
    }

    /// Size of `cmd` inside an encoded SyncBody: exact for XML; for WBXML an
    /// upper bound that is exact unless the command ends on another code page
    /// than it started (then it counts the switch back for what follows).
    /// Summed over the commands and added to the size of the message without
    /// them (with Final), it bounds the encoded message from above.
    pub fn encoded_command_len(self, cmd: &crate::types::Command) -> usize {
        match self {
            Encoding::Xml => xml::encoded_command_len(cmd),
            Encoding::Wbxml => wbxml::encoded_command_len(cmd),
        }
    }

    /// Size `item` adds to an Add/Replace/Delete that already has an item
    /// (same precision as [`Self::encoded_command_len`]).
    pub fn encoded_item_len(self, item: &crate::types::Item) -> usize {
        match self {
            Encoding::Xml => xml::encoded_item_len(item),
            Encoding::Wbxml => wbxml::encoded_item_len(item),
        }
    }

    /// The encoding a Content-Type names (`None` if neither).
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let l = ct.to_ascii_lowercase();
        if l.contains("wbxml") {
            Some(Encoding::Wbxml)
        } else if l.contains("xml") || l.starts_with("text/plain") {
            Some(Encoding::Xml)
        } else {
            None
        }
    }

    /// Decode `input` in whichever encoding it is in (WBXML if it starts like
    /// a WBXML document, else XML).
    pub fn sniff(input: &[u8]) -> Encoding {
        let first = input.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b == b'<') || !wbxml::looks_like_wbxml(input) {
            Encoding::Xml
        } else {
            Encoding::Wbxml
        }
    }
}
