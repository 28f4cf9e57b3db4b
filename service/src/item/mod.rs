//! The common item model: what every [`crate::sources::Source`] yields and what goes on
//! the wire to the SyncML server.
//!
//! Writing is deterministic: the same item always gives the same bytes (change tracking
//! hashes the output).

pub mod contact;
pub mod vcard;

pub use contact::{Address, Contact, Email, Impp, Name, Photo, Tel};
pub use vcard::{Param, Property};

/// The wire formats of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// vCard 3.0 (RFC 2426), `text/vcard`.
    VCard30,
    /// vCard 2.1 (versit), `text/x-vcard`.
    VCard21,
}

impl WireFormat {
    /// The MIME type announced to the server.
    pub fn mime(self) -> &'static str {
        match self {
            WireFormat::VCard30 => "text/vcard",
            WireFormat::VCard21 => "text/x-vcard",
        }
    }

    /// The format version announced to the server.
    pub fn version(self) -> &'static str {
        match self {
            WireFormat::VCard30 => "3.0",
            WireFormat::VCard21 => "2.1",
        }
    }
}

/// Why bytes could not be turned into an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The data is not a well-formed item of the expected format.
    #[error("malformed vCard: {0}")]
    Malformed(String),
}

/// One item of personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Contact(Contact),
}

impl Item {
    /// The item's own UID, if it has one.
    pub fn uid(&self) -> Option<&str> {
        match self {
            Item::Contact(c) => c.uid.as_deref(),
        }
    }

    /// Serialises the item in `format`.
    pub fn to_wire(&self, format: WireFormat) -> Vec<u8> {
        match self {
            Item::Contact(c) => c.to_vcard(format),
        }
    }

    /// Parses an item received in `format`. A vCard's own `VERSION` line decides the
    /// syntax (so a 2.1 card announced as 3.0 still parses); `format` is the fallback.
    pub fn from_wire(data: &[u8], format: WireFormat) -> Result<Item, ItemError> {
        match format {
            WireFormat::VCard30 | WireFormat::VCard21 => {
                let card = vcard::parse(data, format)?;
                Ok(Item::Contact(Contact::from_properties(card.props)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
