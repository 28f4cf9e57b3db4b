//! The common item model: what every [`crate::sources::Source`] yields and what goes on
//! the wire to the SyncML server.
//!
//! Writing is deterministic: the same item always gives the same bytes (change tracking
//! hashes the output).

pub mod calendar;
pub mod caltime;
pub mod contact;
pub mod ical;
pub mod memo;
pub mod sms;
pub mod tz;
pub mod vcal10;
pub mod vcard;
pub mod vmessage;

pub use calendar::{
    instance_id, split_instance_id, Alarm, CalComponent, CalendarItem, CalendarKind, Trigger,
    INSTANCE_ID_SEPARATOR,
};
pub use caltime::{CalTime, Date, LocalTime};
pub use contact::{Address, Contact, Email, Impp, Name, Photo, Tel};
pub use ical::Component;
pub use sms::{Sms, SmsBody, SmsFolder, SmsTimestamp};
pub use vcard::{Param, Property};

use crate::class::DataClass;

/// The wire formats of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// vCard 3.0 (RFC 2426), `text/vcard`.
    VCard30,
    /// vCard 2.1 (versit), `text/x-vcard`.
    VCard21,
    /// iCalendar 2.0 (RFC 5545), `text/calendar`.
    ICal20,
    /// vCalendar 1.0 (versit), `text/x-vcalendar`.
    VCal10,
    /// A memo as plain text, `text/plain`.
    PlainText,
    /// vNote 1.1 (IrMC), `text/x-vnote`.
    VNote11,
    /// vMessage 1.1 (IrMC), `text/x-vmessage`: short messages.
    VMessage11,
}

impl WireFormat {
    /// The MIME type announced to the server.
    pub fn mime(self) -> &'static str {
        match self {
            WireFormat::VCard30 => "text/vcard",
            WireFormat::VCard21 => "text/x-vcard",
            WireFormat::ICal20 => "text/calendar",
            WireFormat::VCal10 => "text/x-vcalendar",
            WireFormat::PlainText => "text/plain",
            WireFormat::VNote11 => "text/x-vnote",
            WireFormat::VMessage11 => "text/x-vmessage",
        }
    }

    /// The format version announced to the server.
    pub fn version(self) -> &'static str {
        match self {
            WireFormat::VCard30 => "3.0",
            WireFormat::VCard21 => "2.1",
            WireFormat::ICal20 => "2.0",
            WireFormat::VCal10 => "1.0",
            WireFormat::PlainText => "1.0",
            WireFormat::VNote11 => "1.1",
            WireFormat::VMessage11 => "1.1",
        }
    }
}

/// The formats the phone can send and accept for `class`, preferred first (empty for
/// classes imsync does not read from a store in these formats).
pub fn formats_for(class: DataClass) -> &'static [WireFormat] {
    match class {
        DataClass::Contacts => &[WireFormat::VCard30, WireFormat::VCard21],
        DataClass::Calendar | DataClass::Tasks => &[WireFormat::ICal20, WireFormat::VCal10],
        DataClass::Notes => &[WireFormat::PlainText, WireFormat::VNote11],
        DataClass::Sms => &[WireFormat::VMessage11],
        DataClass::Roster => &[WireFormat::VCard30, WireFormat::VCard21],
    }
}

/// Why bytes could not be turned into an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The data is not a well-formed item of the expected format.
    #[error("malformed item: {0}")]
    Malformed(String),
}

/// One item of personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Contact(Contact),
    /// An event, task or memo: a master and/or detached instances of one UID, with their
    /// time zones (sources yield one component per item).
    Calendar(CalendarItem),
    /// A short message; its UID is its content identity ([`Sms::identity`]).
    Sms(Sms),
}

impl Item {
    /// The item's own UID, if it has one.
    pub fn uid(&self) -> Option<&str> {
        match self {
            Item::Contact(c) => c.uid.as_deref(),
            Item::Calendar(c) => c.uid(),
            Item::Sms(m) => Some(m.identity()),
        }
    }

    /// What identifies the item when copies of it are matched (restore: a server item
    /// and the phone item it is a copy of). A calendar item's
    /// [`CalendarItem::identity`]: the UID for a master, the UID + separator + recurrence
    /// id for a detached instance that is an item of its own (one series is several
    /// items). Other items: their [`Item::uid`].
    pub fn identity(&self) -> Option<String> {
        match self {
            Item::Calendar(c) => c.identity(),
            other => other.uid().map(str::to_string),
        }
    }

    /// Serialises the item in `format`. Contacts are written as vCard: a non-vCard
    /// format gives vCard 3.0. Calendar items are written in any of the calendar and memo
    /// formats (an event as plain text is its summary and description); a vCard format
    /// gives iCalendar 2.0.
    pub fn to_wire(&self, format: WireFormat) -> Vec<u8> {
        match (self, format) {
            (Item::Contact(c), WireFormat::VCard21) => c.to_vcard(WireFormat::VCard21),
            (Item::Contact(c), _) => c.to_vcard(WireFormat::VCard30),
            (Item::Calendar(c), WireFormat::VCal10) => vcal10::write(c),
            (Item::Calendar(c), WireFormat::PlainText) => memo::to_plain(c),
            (Item::Calendar(c), WireFormat::VNote11) => memo::to_vnote(c),
            (Item::Calendar(c), _) => c.to_ical(),
            // vMessage is the only format of short messages
            (Item::Sms(m), _) => vmessage::write(m),
        }
    }

    /// [`Item::to_wire`] of an item that is not needed afterwards (a contact is written
    /// without copying its values).
    pub fn into_wire(self, format: WireFormat) -> Vec<u8> {
        match (self, format) {
            (Item::Contact(c), WireFormat::VCard21) => c.into_vcard(WireFormat::VCard21),
            (Item::Contact(c), _) => c.into_vcard(WireFormat::VCard30),
            (other, format) => other.to_wire(format),
        }
    }

    /// Parses an item received in `format`. A vCard's or vCalendar's own `VERSION` line
    /// decides the syntax (so a 2.1 card announced as 3.0, or a vCalendar 1.0 announced
    /// as iCalendar 2.0, still parses); `format` is the fallback.
    pub fn from_wire(data: &[u8], format: WireFormat) -> Result<Item, ItemError> {
        if format == WireFormat::VMessage11 || vmessage::looks_like_vmessage(data) {
            return Ok(Item::Sms(vmessage::parse(data)?));
        }
        match format {
            WireFormat::VCard30 | WireFormat::VCard21 => {
                let card = vcard::parse(data, format)?;
                Ok(Item::Contact(Contact::from_properties(card.props)))
            }
            WireFormat::ICal20 | WireFormat::VCal10 => {
                let parsed = ical::parse(data)?;
                let legacy = match parsed.version.as_deref() {
                    Some("1.0") => true,
                    Some(_) => false,
                    None => format == WireFormat::VCal10,
                };
                let item = if legacy { vcal10::read(parsed)? } else { CalendarItem::from_ical(parsed)? };
                Ok(Item::Calendar(item))
            }
            WireFormat::PlainText => Ok(Item::Calendar(memo::from_plain(data)?)),
            WireFormat::VNote11 => Ok(Item::Calendar(memo::from_vnote(ical::parse(data)?)?)),
            WireFormat::VMessage11 => Ok(Item::Sms(vmessage::parse(data)?)),
        }
    }
}

#[cfg(test)]
mod cal_tests;
#[cfg(test)]
mod tests;
