//! The SMS store of one modem as a [`Source`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use xxhash_rust::xxh3::Xxh3;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::convert::{Kind, MmSms};
use super::ledger::{self, Ledger};
use super::{map_error, proxies, ModemInfo, ModemManager, POLKIT_HINT};
use crate::class::DataClass;
use crate::item::{Item, Sms, SmsBody, SmsFolder};
use crate::sources::{Source, SourceError, SourceItem, WriteOp, WriteResult};

/// One listed message.
#[derive(Debug, Clone)]
struct Listed {
    path: OwnedObjectPath,
    local_id: String,
    item: Result<Sms, String>,
    /// The ledger entry that turned this draft back into its original.
    ledger_entry: Option<ledger::Entry>,
}

/// Everything on the modem at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    taken: Instant,
    messages: Vec<Listed>,
    /// Multipart messages still arriving.
    incomplete: usize,
}

/// The identity part of a local id (`<identity>` or `<identity>~<n>`).
fn base_identity(local_id: &str) -> &str {
    local_id.split_once('~').map_or(local_id, |(a, _)| a)
}

/// The local id of the `n`-th (0-based) message with identity `id`.
fn nth_local_id(id: &str, n: usize) -> String {
    if n == 0 {
        id.to_string()
    } else {
        format!("{id}~{}", n + 1)
    }
}

/// Listing numbers `SMS/N` objects by object path number, for a stable order of identical
/// messages.
fn path_number(p: &OwnedObjectPath) -> u64 {
    p.as_str()
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The SMS store of one modem.
///
/// ## Revision
/// A hash of the sorted (local id, vMessage bytes) pairs of the complete messages plus the
/// number of messages still arriving. It costs the same reads as a listing (one `GetAll`
/// per message; ModemManager has no cheaper change counter), but it is stable across
/// ModemManager restarts (object paths are not in it), so a restart alone never causes a
/// SyncML session. The listing it read is kept and handed to the next [`Source::list`] if
/// that comes within a few seconds (the engine asks for the revision, then the items).
///
/// ## Restore
/// See [`Source::write`] on this type.
pub struct ModemSms {
    mm: ModemManager,
    info: ModemInfo,
    id: String,
    name: String,
    ledger: Ledger,
    cached: Option<Snapshot>,
}

impl std::fmt::Debug for ModemSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemSms")
            .field("id", &self.id)
            .field("path", &self.info.path.as_str())
            .finish()
    }
}

const SNAPSHOT_REUSE: Duration = Duration::from_secs(5);

impl ModemSms {
    pub(super) async fn open(
        mm: ModemManager,
        info: ModemInfo,
        ledger: Ledger,
    ) -> Result<ModemSms, SourceError> {
        let id = info.source_id();
        let name = info.display_name();
        Ok(ModemSms {
            mm,
            info,
            id,
            name,
            ledger,
            cached: None,
        })
    }

    /// The modem's D-Bus path now.
    pub fn modem_path(&self) -> &OwnedObjectPath {
        &self.info.path
    }

    async fn messaging(&self) -> Result<proxies::MessagingProxy<'static>, SourceError> {
        Ok(proxies::MessagingProxy::builder(self.mm.connection())
            .path(self.info.path.clone())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// `Messaging.List`, finding the modem again once if its path is gone.
    async fn list_paths(&mut self) -> Result<Vec<OwnedObjectPath>, SourceError> {
        match self.messaging().await?.list().await {
            Ok(p) => Ok(p),
            Err(e) if super::is_gone(&e) => {
                let again = self.mm.find_again(&self.info).await?;
                tracing::info!(old = %self.info.path, new = %again.path, "modem reappeared under a new path");
                self.mm
                    .wait_enabled(&again.path, ModemManager::DEFAULT_ENABLE_WAIT)
                    .await?;
                self.info = again;
                self.messaging()
                    .await?
                    .list()
                    .await
                    .map_err(|e| map_error(&self.id, "listing the SMS", e))
            }
            Err(e) => Err(map_error(&self.id, "listing the SMS", e)),
        }
    }

    /// Reads every message (one `GetAll` each), maps restored drafts through the ledger and
    /// numbers identical messages.
    async fn read_all(&mut self) -> Result<Snapshot, SourceError> {
        let paths = self.list_paths().await?;
        let mut raw: Vec<(OwnedObjectPath, Result<MmSms, String>)> =
            Vec::with_capacity(paths.len());
        for path in paths {
            let props = zbus::fdo::PropertiesProxy::builder(self.mm.connection())
                .destination(proxies::SERVICE)?
                .path(path.clone())?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let iface = zbus::names::InterfaceName::from_static_str_unchecked(proxies::SMS_IFACE);
            match props.get_all(iface).await {
                Ok(map) => raw.push((path, MmSms::from_properties(&map))),
                // deleted between List and GetAll
                Err(e) if super::is_gone(&e.clone().into()) => {
                    tracing::debug!(%path, "SMS vanished while listing");
                }
                Err(e) => return Err(map_error(&self.id, "reading an SMS", e.into())),
            }
        }
        raw.sort_by_key(|(p, _)| path_number(p));

        let mut incomplete = 0;
        let mut listed: Vec<Listed> = Vec::with_capacity(raw.len());
        let mut claimed: Vec<usize> = Vec::new();
        for (path, mm) in raw {
            let item = match mm.map(|m| m.classify()) {
                Err(e) => Err(e),
                Ok(Kind::Message(r)) => r,
                Ok(Kind::Incomplete) => {
                    incomplete += 1;
                    continue;
                }
                Ok(Kind::Ignored(why)) => {
                    tracing::debug!(%path, why, "SMS object skipped");
                    continue;
                }
            };
            let mut entry_used = None;
            let item = match item {
                Ok(sms) if sms.folder() == SmsFolder::Draft && sms.timestamp().is_none() => {
                    let key = ledger::draft_key(sms.number(), sms.body());
                    let found =
                        self.ledger.entries().iter().enumerate().find(|(i, e)| {
                            e.source == self.id && e.key == key && !claimed.contains(i)
                        });
                    match found.and_then(|(i, e)| e.restore_onto(&sms).map(|orig| (i, orig))) {
                        Some((i, orig)) => {
                            claimed.push(i);
                            entry_used = self.ledger.entries().get(i).cloned();
                            Ok(orig)
                        }
                        None => Ok(sms),
                    }
                }
                other => other,
            };
            let local_id = match &item {
                Ok(sms) => sms.identity().to_string(),
                // keeps the failure reportable under a stable-enough id
                Err(_) => format!(
                    "unreadable:{}",
                    path.as_str().rsplit('/').next().unwrap_or("")
                ),
            };
            listed.push(Listed {
                path,
                local_id,
                item,
                ledger_entry: entry_used,
            });
        }
        // identical messages: ~2, ~3 … in a stable order (folder, read, then path)
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in listed.iter().enumerate() {
            by_id.entry(l.local_id.clone()).or_default().push(i);
        }
        for (id, mut idx) in by_id {
            if idx.len() < 2 {
                continue;
            }
            idx.sort_by_key(|&i| {
                let l = &listed[i];
                let (f, r) = l
                    .item
                    .as_ref()
                    .map(|s| (s.folder(), !s.read()))
                    .unwrap_or((SmsFolder::Draft, false));
                (f, r, path_number(&l.path))
            });
            for (n, i) in idx.into_iter().enumerate() {
                listed[i].local_id = nth_local_id(&id, n);
            }
        }
        if let Err(e) = self.ledger.retain_claimed(&self.id, &claimed) {
            tracing::warn!(error = %e, "cannot update the SMS restore ledger");
        }
        Ok(Snapshot {
            taken: Instant::now(),
            messages: listed,
            incomplete,
        })
    }

    fn revision_of(snap: &Snapshot) -> String {
        let mut pairs: Vec<(&str, Vec<u8>)> = snap
            .messages
            .iter()
            .map(|m| {
                let bytes = match &m.item {
                    Ok(sms) => crate::item::vmessage::write(sms),
                    Err(e) => e.as_bytes().to_vec(),
                };
                (m.local_id.as_str(), bytes)
            })
            .collect();
        pairs.sort();
        let mut h = Xxh3::new();
        for (id, bytes) in &pairs {
            h.update(&(id.len() as u64).to_be_bytes());
            h.update(id.as_bytes());
            h.update(&(bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        format!(
            "sms1:{}:{}:{:032x}",
            pairs.len(),
            snap.incomplete,
            h.digest128()
        )
    }

    async fn snapshot(&mut self, reuse: bool) -> Result<Snapshot, SourceError> {
        if reuse {
            if let Some(s) = self.cached.take() {
                if s.taken.elapsed() < SNAPSHOT_REUSE {
                    return Ok(s);
                }
            }
        }
        self.cached = None;
        self.read_all().await
    }

    async fn sms_proxy(
        &self,
        path: &OwnedObjectPath,
    ) -> Result<proxies::SmsProxy<'static>, SourceError> {
        Ok(proxies::SmsProxy::builder(self.mm.connection())
            .path(path.clone())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// Creates and stores one message. `Err(Err(e))` = the whole store cannot be written.
    async fn create(&mut self, sms: &Sms) -> Result<OwnedObjectPath, Result<String, SourceError>> {
        if sms.number().is_empty() {
            return Err(Ok("the message has no number: ModemManager cannot store a message without a recipient".into()));
        }
        let dialable = sms
            .number()
            .trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
        if !dialable {
            return Err(Ok(format!(
                "the other party '{}' is an alphanumeric sender: ModemManager can only store messages addressed to a \
                 phone number, so this message stays in the backup only",
                sms.number()
            )));
        }
        let mut props: HashMap<&str, Value<'_>> = HashMap::new();
        props.insert("number", Value::from(sms.number()));
        match sms.body() {
            SmsBody::Text(t) => props.insert("text", Value::from(t.as_str())),
            SmsBody::Data(d) => props.insert("data", Value::from(d.clone())),
        };
        let messaging = self.messaging().await.map_err(Err)?;
        let path = match messaging.create(props).await {
            Ok(p) => p,
            Err(e) if super::is_unauthorized(&e) => {
                return Err(Err(map_error(&self.id, "Messaging.Create", e)))
            }
            Err(e) => return Err(Ok(map_error(&self.id, "Messaging.Create", e).to_string())),
        };
        let stored = match self.sms_proxy(&path).await {
            Ok(p) => p
                .store(0)
                .await
                .map_err(|e| map_error(&self.id, "Sms.Store", e)),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            // do not leave an unstored object behind
            if let Err(d) = messaging.delete(&path.as_ref()).await {
                tracing::warn!(%path, error = %d, "cannot delete the SMS that could not be stored");
            }
            let unauthorized =
                matches!(&e, SourceError::Store { detail, .. } if detail.contains(POLKIT_HINT));
            return Err(if unauthorized {
                Err(e)
            } else {
                Ok(e.to_string())
            });
        }
        Ok(path)
    }

    /// What the modem cannot keep of `sms` (for the log).
    fn losses(sms: &Sms) -> Vec<String> {
        let mut lost = Vec::new();
        match sms.folder() {
            SmsFolder::Inbox => lost.push(format!(
                "direction (received from {}; stored as a draft to that number)",
                sms.number()
            )),
            SmsFolder::Sent => lost.push("sent state (stored as an unsent draft)".into()),
            SmsFolder::Draft => {}
        }
        if let Some(t) = sms.timestamp() {
            lost.push(format!("date {t}"));
        }
        if !sms.read() {
            lost.push("unread state".into());
        }
        lost
    }
}

#[async_trait]
impl Source for ModemSms {
    fn class(&self) -> DataClass {
        DataClass::Sms
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.name
    }

    async fn revision(&mut self) -> Result<String, SourceError> {
        let snap = self.snapshot(false).await?;
        let rev = Self::revision_of(&snap);
        self.cached = Some(snap);
        Ok(rev)
    }

    async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError> {
        let snap = self.snapshot(true).await?;
        if snap.incomplete > 0 {
            tracing::info!(source = %self.id, incomplete = snap.incomplete, "multipart SMS still arriving: left for the next backup");
        }
        Ok(snap
            .messages
            .into_iter()
            .map(|m| SourceItem {
                local_id: m.local_id,
                item: m.item.map(Item::Sms),
                digest: None,
            })
            .collect())
    }

    fn writable(&self) -> bool {
        true
    }

    /// Restore into the modem.
    ///
    /// - `Add`: `Messaging.Create` (number + text, or number + data for binary messages) then
    ///   `Sms.Store(0)` (the default storage). ModemManager can only create SMS-SUBMIT
    ///   messages without timestamp: the modem then holds a *draft* to the original number.
    ///   What is lost on the modem (direction, sent state, date, unread state) is logged per
    ///   message and kept in the restore [`ledger`], through which later listings present the
    ///   draft as the original again (same identity, same vMessage), so the next backup sends
    ///   nothing. An `Add` whose identity is already on the modem is refused. The returned
    ///   local id is the one the message has in later listings.
    /// - `Replace` of a message with the same identity: the content is already there;
    ///   folder and read state cannot be changed through ModemManager except for restored
    ///   messages, whose ledger entry is updated. Other content: refused.
    /// - `Delete`: `Messaging.Delete` (every part).
    ///
    /// Polkit refusing the writes (`…Error.Core.Unauthorized`) fails the whole call with a
    /// [`SourceError::Store`] that says so.
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, SourceError> {
        let snap = self.snapshot(false).await?;
        let before: HashMap<String, usize> = {
            let mut m = HashMap::new();
            for l in &snap.messages {
                *m.entry(base_identity(&l.local_id).to_string()).or_insert(0) += 1;
            }
            m
        };
        let mut added: HashMap<String, usize> = HashMap::new();
        let mut results = Vec::with_capacity(ops.len());
        let fail = |why: String| WriteResult {
            local_id: None,
            error: Some(why),
        };
        for op in ops {
            match op {
                WriteOp::Add(Item::Sms(sms)) => {
                    let id = sms.identity().to_string();
                    let existing = before.get(&id).copied().unwrap_or(0);
                    if existing > 0 {
                        results.push(WriteResult {
                            local_id: Some(id.clone()),
                            error: Some(format!("this message is already on the modem (identity {id}); not written twice")),
                        });
                        continue;
                    }
                    let entry = ledger::needs_entry(&sms)
                        .then(|| ledger::Entry::for_message(&self.id, &sms));
                    if let Some(e) = &entry {
                        if let Err(err) = self.ledger.add(e.clone()) {
                            tracing::warn!(error = %err, "cannot save the SMS restore ledger; the restored message will list as a draft");
                        }
                    }
                    match self.create(&sms).await {
                        Ok(path) => {
                            let n = added.entry(id.clone()).or_insert(0);
                            let local_id = nth_local_id(&id, *n);
                            *n += 1;
                            let lost = Self::losses(&sms);
                            if lost.is_empty() {
                                tracing::info!(source = %self.id, %path, "SMS restored");
                            } else {
                                tracing::info!(
                                    source = %self.id, %path, not_preserved_on_the_modem = %lost.join(", "),
                                    "SMS restored as a draft (ModemManager can only store unsent messages); the backup keeps the original"
                                );
                            }
                            results.push(WriteResult {
                                local_id: Some(local_id),
                                error: None,
                            });
                        }
                        Err(why) => {
                            if let Some(e) = &entry {
                                let _ = self.ledger.remove(e);
                            }
                            match why {
                                Ok(msg) => results.push(fail(msg)),
                                Err(fatal) => return Err(fatal),
                            }
                        }
                    }
                }
                WriteOp::Add(_) => results.push(fail(
                    "only short messages can be written to the modem".into(),
                )),
                WriteOp::Replace { local_id, item } => {
                    let Item::Sms(sms) = item else {
                        results.push(fail(
                            "only short messages can be written to the modem".into(),
                        ));
                        continue;
                    };
                    let Some(cur) = snap.messages.iter().find(|m| m.local_id == local_id) else {
                        results.push(fail(format!("no message {local_id} on the modem")));
                        continue;
                    };
                    if base_identity(&local_id) != sms.identity() {
                        results.push(fail(
                            "the content of a short message cannot be changed".into(),
                        ));
                        continue;
                    }
                    let same = cur.item.as_ref().is_ok_and(|c| c == &sms);
                    if !same {
                        match cur.ledger_entry.clone() {
                            Some(old) => {
                                let _ = self.ledger.remove(&old);
                                if ledger::needs_entry(&sms) {
                                    let _ =
                                        self.ledger.add(ledger::Entry::for_message(&self.id, &sms));
                                }
                            }
                            None => tracing::info!(
                                source = %self.id, %local_id,
                                "folder/read state of an SMS cannot be changed through ModemManager; the modem keeps its own"
                            ),
                        }
                    }
                    results.push(WriteResult {
                        local_id: Some(local_id),
                        error: None,
                    });
                }
                WriteOp::Delete { local_id } => {
                    let Some(cur) = snap.messages.iter().find(|m| m.local_id == local_id) else {
                        // already gone: the goal is met
                        results.push(WriteResult {
                            local_id: None,
                            error: None,
                        });
                        continue;
                    };
                    let messaging = self.messaging().await?;
                    match messaging.delete(&cur.path.as_ref()).await {
                        Ok(()) => {
                            if let Some(e) = &cur.ledger_entry {
                                let _ = self.ledger.remove(e);
                            }
                            results.push(WriteResult {
                                local_id: None,
                                error: None,
                            });
                        }
                        Err(e) if super::is_unauthorized(&e) => {
                            return Err(map_error(&self.id, "Messaging.Delete", e))
                        }
                        Err(e) => results
                            .push(fail(map_error(&self.id, "Messaging.Delete", e).to_string())),
                    }
                }
            }
        }
        self.cached = None;
        Ok(results)
    }
}
