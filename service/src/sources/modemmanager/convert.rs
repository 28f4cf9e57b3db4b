//! ModemManager's `Sms` properties → the common item model (pure, no bus).

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;

use crate::item::{Sms, SmsBody, SmsFolder, SmsTimestamp};

/// `MMSmsState`.
pub mod state {
    pub const UNKNOWN: u32 = 0;
    pub const STORED: u32 = 1;
    pub const RECEIVING: u32 = 2;
    pub const RECEIVED: u32 = 3;
    pub const SENDING: u32 = 4;
    pub const SENT: u32 = 5;
}

/// `MMSmsPduType`.
pub mod pdu {
    pub const DELIVER: u32 = 1;
    pub const SUBMIT: u32 = 2;
    pub const STATUS_REPORT: u32 = 3;
    pub const CDMA_DELIVER: u32 = 32;
    pub const CDMA_SUBMIT: u32 = 33;
}

/// The properties of one `org.freedesktop.ModemManager1.Sms` object that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MmSms {
    pub state: u32,
    pub pdu_type: u32,
    pub number: String,
    pub text: String,
    pub data: Vec<u8>,
    pub timestamp: String,
    pub storage: u32,
}

/// What a listed object is for a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A complete message (or why it cannot be converted).
    Message(Result<Sms, String>),
    /// A multipart message still arriving (State 2): listed later, once complete.
    Incomplete,
    /// Not a message of the user's (status report, created but never stored, …).
    Ignored(&'static str),
}

fn take<T: TryFrom<OwnedValue>>(
    props: &HashMap<String, OwnedValue>,
    name: &str,
) -> Result<Option<T>, String> {
    match props.get(name) {
        None => Ok(None),
        Some(v) => {
            let v = v.try_clone().map_err(|e| format!("property {name}: {e}"))?;
            T::try_from(v)
                .map(Some)
                .map_err(|_| format!("property {name} has an unexpected type"))
        }
    }
}

impl MmSms {
    /// From a `Properties.GetAll("org.freedesktop.ModemManager1.Sms")` result. Missing
    /// properties take their "unknown" values; a property of the wrong type is an error.
    pub fn from_properties(props: &HashMap<String, OwnedValue>) -> Result<MmSms, String> {
        Ok(MmSms {
            state: take(props, "State")?.unwrap_or(state::UNKNOWN),
            pdu_type: take(props, "PduType")?.unwrap_or(0),
            number: take(props, "Number")?.unwrap_or_default(),
            text: take(props, "Text")?.unwrap_or_default(),
            data: take(props, "Data")?.unwrap_or_default(),
            timestamp: take(props, "Timestamp")?.unwrap_or_default(),
            storage: take(props, "Storage")?.unwrap_or(0),
        })
    }

    /// The folder a message belongs in: received PDUs → inbox; submit PDUs → sent once
    /// sent, else draft (stored, or still sending).
    pub fn folder(&self) -> Option<SmsFolder> {
        match self.pdu_type {
            pdu::DELIVER | pdu::CDMA_DELIVER => Some(SmsFolder::Inbox),
            pdu::SUBMIT | pdu::CDMA_SUBMIT if self.state == state::SENT => Some(SmsFolder::Sent),
            pdu::SUBMIT | pdu::CDMA_SUBMIT => Some(SmsFolder::Draft),
            _ => None,
        }
    }

    pub fn classify(&self) -> Kind {
        match self.state {
            state::RECEIVING => return Kind::Incomplete,
            state::UNKNOWN => return Kind::Ignored("created but not stored"),
            _ => {}
        }
        if self.pdu_type == pdu::STATUS_REPORT {
            return Kind::Ignored("status report");
        }
        let Some(folder) = self.folder() else {
            return Kind::Ignored("unknown PDU type");
        };
        let timestamp = match SmsTimestamp::parse(&self.timestamp) {
            Ok(t) => t,
            Err(e) => return Kind::Message(Err(e.to_string())),
        };
        // 8-bit messages: Text is "" and Data holds the payload
        let body = if self.text.is_empty() && !self.data.is_empty() {
            SmsBody::Data(self.data.clone())
        } else {
            SmsBody::Text(self.text.clone())
        };
        // ModemManager merges REC READ and REC UNREAD (and marks messages read when it
        // lists them), so every message counts as read.
        Kind::Message(Ok(Sms::new(folder, true, &self.number, timestamp, body)))
    }
}

#[cfg(test)]
mod tests {
    use zbus::zvariant::Value;

    use super::*;

    fn props(pairs: Vec<(&str, Value<'static>)>) -> HashMap<String, OwnedValue> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn converts_every_kind() {
        let received = props(vec![
            ("State", Value::U32(3)),
            ("PduType", Value::U32(1)),
            ("Number", Value::from("+8613800138000")),
            ("Text", Value::from("你好")),
            ("Data", Value::from(Vec::<u8>::new())),
            ("Timestamp", Value::from("2024-01-01T09:01:01+08")),
            ("Storage", Value::U32(2)),
            ("SMSC", Value::from("+15550000000")),
            ("Class", Value::I32(-1)),
        ]);
        let m = MmSms::from_properties(&received).unwrap();
        let Kind::Message(Ok(sms)) = m.classify() else {
            panic!("{:?}", m.classify())
        };
        assert_eq!(sms.folder(), SmsFolder::Inbox);
        assert_eq!(
            sms.timestamp().unwrap().canonical(),
            "2024-01-01T09:01:01+08:00"
        );
        assert_eq!(sms.text(), Some("你好"));

        let binary = MmSms {
            state: 3,
            pdu_type: 1,
            number: "+1".into(),
            data: vec![0, 0xff],
            timestamp: "2024-01-01T16:08:08-03:30".into(),
            ..Default::default()
        };
        let Kind::Message(Ok(sms)) = binary.classify() else {
            panic!()
        };
        assert_eq!(sms.body(), &SmsBody::Data(vec![0, 0xff]));

        let sent = MmSms {
            state: 5,
            pdu_type: 2,
            number: "+1".into(),
            text: "x".into(),
            ..Default::default()
        };
        let Kind::Message(Ok(sms)) = sent.classify() else {
            panic!()
        };
        assert_eq!((sms.folder(), sms.timestamp()), (SmsFolder::Sent, None));
        let draft = MmSms {
            state: 1,
            ..sent.clone()
        };
        let Kind::Message(Ok(d)) = draft.classify() else {
            panic!()
        };
        assert_eq!(d.folder(), SmsFolder::Draft);
        assert_eq!(
            d.identity(),
            sms.identity(),
            "a draft that gets sent stays the same message"
        );

        assert_eq!(
            MmSms {
                state: 2,
                pdu_type: 1,
                ..Default::default()
            }
            .classify(),
            Kind::Incomplete
        );
        assert!(matches!(
            MmSms {
                state: 0,
                pdu_type: 2,
                ..Default::default()
            }
            .classify(),
            Kind::Ignored(_)
        ));
        assert!(matches!(
            MmSms {
                state: 3,
                pdu_type: 3,
                ..Default::default()
            }
            .classify(),
            Kind::Ignored(_)
        ));
        let bad_time = MmSms {
            state: 3,
            pdu_type: 1,
            timestamp: "yesterday".into(),
            ..Default::default()
        };
        assert!(matches!(bad_time.classify(), Kind::Message(Err(_))));
        let wrong_type = props(vec![("State", Value::from("three"))]);
        assert!(MmSms::from_properties(&wrong_type).is_err());
    }
}
