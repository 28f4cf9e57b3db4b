//! The restore ledger: what ModemManager cannot keep of a restored message.
//!
//! `Messaging.Create` only makes SMS-SUBMIT messages without timestamp, so a restored
//! received or sent message lands on the modem as a *draft* to the same number with the
//! same text. Left alone, the next backup would see a new message (a draft, with another
//! identity) and send it to the server next to the original.
//!
//! The ledger remembers, per restored message, its original folder, read state and
//! timestamp, under a key made of the source and the hash of number and body (no message
//! text is stored). When listing, a stored draft without timestamp whose key has an
//! unclaimed entry is presented as the original message: same vMessage bytes, same
//! identity. Entries nobody claims during a complete listing belong to deleted messages
//! and are dropped.
//!
//! Without a usable state directory the ledger lives in memory only (restored messages
//! then show up as drafts after the daemon restarts).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::item::{Sms, SmsBody, SmsFolder, SmsTimestamp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The [`crate::sources::Source::id`] the message was restored into.
    pub source: String,
    /// Hash of number and body (see [`draft_key`]).
    pub key: String,
    /// `X-IRMC-BOX` value of the original.
    pub folder: String,
    pub read: bool,
    /// RFC 3339, or `None`.
    pub timestamp: Option<String>,
}

impl Entry {
    pub fn for_message(source: &str, sms: &Sms) -> Entry {
        Entry {
            source: source.to_string(),
            key: draft_key(sms.number(), sms.body()),
            folder: sms.folder().irmc_box().to_string(),
            read: sms.read(),
            timestamp: sms.timestamp().map(SmsTimestamp::canonical),
        }
    }

    /// The original message, given the draft the modem holds.
    pub fn restore_onto(&self, draft: &Sms) -> Option<Sms> {
        let folder = SmsFolder::from_irmc_box(&self.folder)?;
        let timestamp = match &self.timestamp {
            Some(t) => Some(SmsTimestamp::parse(t).ok().flatten()?),
            None => None,
        };
        Some(Sms::new(
            folder,
            self.read,
            draft.number(),
            timestamp,
            draft.body().clone(),
        ))
    }
}

/// The key of a message as the modem will hold it after a restore.
pub fn draft_key(number: &str, body: &SmsBody) -> String {
    let mut buf = Vec::new();
    buf.extend_from_slice(b"sms-draft-key-1\0");
    buf.extend_from_slice(&(number.len() as u64).to_be_bytes());
    buf.extend_from_slice(number.as_bytes());
    match body {
        SmsBody::Text(t) => {
            buf.push(b'x');
            buf.extend_from_slice(t.as_bytes());
        }
        SmsBody::Data(d) => {
            buf.push(b'b');
            buf.extend_from_slice(d);
        }
    }
    format!("{:032x}", xxh3_128(&buf))
}

/// True if the modem's copy of a restored `sms` would differ from it (so a ledger entry is
/// needed): anything but a read draft without timestamp.
pub fn needs_entry(sms: &Sms) -> bool {
    sms.folder() != SmsFolder::Draft || !sms.read() || sms.timestamp().is_some()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

/// The ledger file (or an in-memory ledger).
#[derive(Debug)]
pub struct Ledger {
    path: Option<PathBuf>,
    entries: Vec<Entry>,
}

impl Ledger {
    /// Loads the ledger at `path` (a missing file is an empty ledger; an unreadable one is
    /// logged and treated as empty, never fatal).
    pub fn load(path: Option<PathBuf>) -> Ledger {
        let entries = match &path {
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<File>(&bytes) {
                    Ok(f) => f.entries,
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "SMS restore ledger unreadable; ignored");
                        Vec::new()
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot read the SMS restore ledger");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        Ledger { path, entries }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn add(&mut self, e: Entry) -> std::io::Result<()> {
        self.entries.push(e);
        self.save()
    }

    /// Removes the first entry equal to `e`.
    pub fn remove(&mut self, e: &Entry) -> std::io::Result<()> {
        if let Some(i) = self.entries.iter().position(|x| x == e) {
            self.entries.remove(i);
            self.save()?;
        }
        Ok(())
    }

    /// Keeps only the entries of `source` in `claimed` (indexes into [`Ledger::entries`]) and
    /// every entry of other sources.
    pub fn retain_claimed(&mut self, source: &str, claimed: &[usize]) -> std::io::Result<()> {
        let before = self.entries.len();
        let mut i = 0;
        self.entries.retain(|e| {
            let keep = e.source != source || claimed.contains(&i);
            i += 1;
            keep
        });
        if self.entries.len() != before {
            tracing::info!(
                dropped = before - self.entries.len(),
                "SMS restore ledger: entries of deleted messages dropped"
            );
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File {
            version: 1,
            entries: self.entries.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_draft_back_to_the_original() {
        let ts = SmsTimestamp::parse("2024-01-01T08:00:00+02").unwrap();
        let orig = Sms::new(
            SmsFolder::Inbox,
            false,
            "+1555",
            ts,
            SmsBody::Text("hi".into()),
        );
        assert!(needs_entry(&orig));
        let draft = Sms::new(
            SmsFolder::Draft,
            true,
            "+1555",
            None,
            SmsBody::Text("hi".into()),
        );
        assert!(!needs_entry(&draft));
        let e = Entry::for_message("mm", &orig);
        assert_eq!(e.key, draft_key(draft.number(), draft.body()));
        assert_eq!(e.restore_onto(&draft), Some(orig.clone()));
        assert_eq!(e.restore_onto(&draft).unwrap().identity(), orig.identity());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ledger.json");
        let mut l = Ledger::load(Some(path.clone()));
        l.add(e.clone()).unwrap();
        l.add(Entry {
            source: "other".into(),
            ..e.clone()
        })
        .unwrap();
        let l2 = Ledger::load(Some(path.clone()));
        assert_eq!(l2.entries().len(), 2);
        let mut l2 = l2;
        l2.retain_claimed("mm", &[]).unwrap();
        assert_eq!(
            Ledger::load(Some(path.clone())).entries(),
            &[Entry {
                source: "other".into(),
                ..e
            }]
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert!(Ledger::load(Some(path)).entries().is_empty());
    }
}
