//! The `roster` class: the account's IM friend list (handed over by the chat app with
//! `SetRoster`, kept in the state store) plus the account's own identity, as vCards.
//!
//! One vCard per friend:
//!
//! ```text
//! BEGIN:VCARD
//! VERSION:3.0
//! N:bob@example.org;;;;
//! FN:Bob
//! IMPP:xmpp:bob@example.org
//! CATEGORIES:Friends,Work
//! X-IMSYNC-SUBSCRIPTION:both
//! UID:xmpp:bob@example.org
//! END:VCARD
//! ```
//!
//! - `IMPP` is `<protocol>:<im_id>` (characters that would break the line, and `%`, are
//!   percent-encoded); it identifies the entry;
//! - `FN` is the name the user gave the friend, or the IM id when there is none (so an
//!   `FN` equal to the IM id reads back as "no name");
//! - `N` holds the IM id as family name: SyncML servers match contacts by `N` in a slow sync,
//!   so it must differ between entries (two friends called "Bob" are two cards);
//! - `CATEGORIES` are the groups, `X-IMSYNC-SUBSCRIPTION` the subscription (`none` if absent).
//!
//! And one vCard for the account itself (no secrets): `X-IMSYNC-SELF:1`, `IMPP` the account's
//! own `<protocol>:<im_id>`, `FN` its display name, `N:<im_id>;;imsync-self;;` — so a new
//! phone set up with the same server gets the display name back with the friend list.
//!
//! The revision is the store's roster counter, bumped on every change of the roster or of the
//! display name: an unchanged roster is not read again.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Source, SourceError, SourceItem, WriteOp, WriteResult};
use crate::class::DataClass;
use crate::item::{Contact, Impp, Item, Name, Property};
use crate::profile::roster::{normalise_groups, RosterEntry, Subscription};
use crate::profile::{Account, Store};

pub const SELF_PROPERTY: &str = "X-IMSYNC-SELF";
pub const SUBSCRIPTION_PROPERTY: &str = "X-IMSYNC-SUBSCRIPTION";
/// The local id of the account's own card.
pub const SELF_ID: &str = "self";
const SELF_MARK: &str = "imsync-self";
const SOURCE_ID: &str = "imsync:roster";

/// What a roster vCard holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterCard {
    /// The account's own identity.
    Own { protocol: String, im_id: String, display_name: String },
    /// A friend; `protocol` is the one of its IMPP address.
    Entry { protocol: String, entry: RosterEntry },
}

fn encode_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c == ';' || c == ',' || c == '\\' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn decode_id(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The local id of an entry (also its vCard UID): `<protocol>:<im_id>`.
pub fn entry_id(protocol: &str, im_id: &str) -> String {
    format!("{protocol}:{im_id}")
}

fn card(protocol: &str, im_id: &str, fn_text: &str, n_additional: &str) -> Contact {
    Contact {
        name: Some(Name { family: im_id.to_string(), additional: n_additional.to_string(), ..Default::default() }),
        formatted_name: Some(if fn_text.is_empty() { im_id.to_string() } else { fn_text.to_string() }),
        impp: vec![Impp { uri: format!("{protocol}:{}", encode_id(im_id)), ..Default::default() }],
        ..Default::default()
    }
}

/// The vCard item of one roster entry of an account of `protocol`.
pub fn entry_to_item(protocol: &str, e: &RosterEntry) -> Item {
    let mut c = card(protocol, &e.im_id, &e.name, "");
    c.categories = e.groups.clone();
    c.extra.push(Property::text(SUBSCRIPTION_PROPERTY, e.subscription.as_str()));
    c.uid = Some(entry_id(protocol, &e.im_id));
    Item::Contact(c)
}

/// The vCard item of the account's own identity.
pub fn own_to_item(account: &Account) -> Item {
    let mut c = card(&account.protocol, &account.im_id, &account.display_name, SELF_MARK);
    c.extra.push(Property::text(SELF_PROPERTY, "1"));
    c.uid = Some(format!("{SELF_MARK}:{}", account.name()));
    Item::Contact(c)
}

/// Read a roster vCard back.
pub fn card_from_item(item: &Item) -> Result<RosterCard, String> {
    let Item::Contact(c) = item else { return Err("not a vCard".into()) };
    let impp = c.impp.first().ok_or("the card has no IMPP (the IM address)")?;
    let (protocol, im_id) =
        impp.uri.split_once(':').ok_or_else(|| format!("IMPP '{}' is not <protocol>:<id>", impp.uri))?;
    let (protocol, im_id) = (protocol.to_ascii_lowercase(), decode_id(im_id));
    if im_id.trim().is_empty() {
        return Err(format!("IMPP '{}' has no IM id", impp.uri));
    }
    let name = match c.formatted_name.as_deref() {
        Some(f) if f != im_id => f.to_string(),
        _ => String::new(),
    };
    let extra = |prop: &str| c.extra.iter().find(|p| p.name == prop).map(|p| p.text_value().trim().to_string());
    let is_self = extra(SELF_PROPERTY).is_some_and(|v| v == "1")
        || c.name.as_ref().is_some_and(|n| n.additional == SELF_MARK && n.family == im_id);
    if is_self {
        return Ok(RosterCard::Own { protocol, im_id, display_name: name });
    }
    let subscription = match extra(SUBSCRIPTION_PROPERTY) {
        None => Subscription::None,
        Some(s) if s.is_empty() => Subscription::None,
        Some(s) => s.parse::<Subscription>()?,
    };
    Ok(RosterCard::Entry {
        protocol,
        entry: RosterEntry { im_id, name, groups: normalise_groups(c.categories.iter().cloned()), subscription },
    })
}

/// The roster of one account, read from and written to the state store.
pub struct RosterSource {
    store: Arc<Mutex<Store>>,
    account: String,
    protocol: String,
    im_id: String,
}

impl RosterSource {
    pub fn new(store: Arc<Mutex<Store>>, account: &Account) -> Self {
        RosterSource {
            store,
            account: account.name(),
            protocol: account.protocol.clone(),
            im_id: account.im_id.clone(),
        }
    }

    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, crate::profile::ProfileError>,
    ) -> Result<T, SourceError> {
        let mut s = self
            .store
            .lock()
            .map_err(|_| SourceError::Store { store: SOURCE_ID.into(), detail: "state store lock poisoned".into() })?;
        f(&mut s).map_err(|e| SourceError::Store { store: SOURCE_ID.into(), detail: e.to_string() })
    }

    /// What one write means for the store; `Err` = the op fails with that reason.
    fn plan(&self, item: &Item) -> Result<RosterCard, String> {
        let card = card_from_item(item)?;
        match &card {
            RosterCard::Own { protocol, im_id, .. } if (protocol, im_id) != (&self.protocol, &self.im_id) => {
                Err(format!(
                    "the backed-up identity is {protocol}:{im_id}, this account is {}; it is not applied",
                    self.account
                ))
            }
            RosterCard::Entry { protocol, .. } if *protocol != self.protocol => {
                Err(format!("the friend's address is for {protocol}, this account uses {}", self.protocol))
            }
            _ => Ok(card),
        }
    }
}

#[async_trait]
impl Source for RosterSource {
    fn class(&self) -> DataClass {
        DataClass::Roster
    }

    fn id(&self) -> &str {
        SOURCE_ID
    }

    fn display_name(&self) -> &str {
        "IM friend list"
    }

    async fn revision(&mut self) -> Result<String, SourceError> {
        let account = self.account.clone();
        Ok(self.with_store(|s| s.roster_revision(&account))?.to_string())
    }

    async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError> {
        let name = self.account.clone();
        let (account, entries) = self.with_store(|s| Ok((s.account(&name)?, s.roster(&name)?)))?;
        let account = account.ok_or_else(|| SourceError::Store {
            store: SOURCE_ID.into(),
            detail: format!("no account named '{name}'"),
        })?;
        let mut out = Vec::with_capacity(entries.len() + 1);
        out.push(SourceItem { local_id: SELF_ID.to_string(), item: Ok(own_to_item(&account)), digest: None });
        for e in &entries {
            out.push(SourceItem {
                local_id: entry_id(&self.protocol, &e.im_id),
                item: Ok(entry_to_item(&self.protocol, e)),
                digest: None,
            });
        }
        Ok(out)
    }

    fn writable(&self) -> bool {
        true
    }

    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, SourceError> {
        let mut results = Vec::with_capacity(ops.len());
        let mut upserts: Vec<RosterEntry> = Vec::new();
        let mut removals: Vec<String> = Vec::new();
        let mut display_name: Option<String> = None;
        let prefix = format!("{}:", self.protocol);
        let im_id_of = |local_id: &str| local_id.strip_prefix(&prefix).map(str::to_string);
        for op in ops {
            let (item, replaces) = match op {
                WriteOp::Add(item) => (item, None),
                WriteOp::Replace { local_id, item } => (item, Some(local_id)),
                WriteOp::Delete { local_id } => {
                    if local_id == SELF_ID {
                        results.push(WriteResult {
                            local_id: None,
                            error: Some("the account's own card is not deleted".into()),
                        });
                    } else if let Some(id) = im_id_of(&local_id) {
                        removals.push(id);
                        results.push(WriteResult { local_id: None, error: None });
                    } else {
                        results
                            .push(WriteResult { local_id: None, error: Some(format!("no roster entry '{local_id}'")) });
                    }
                    continue;
                }
            };
            match self.plan(&item) {
                Ok(RosterCard::Own { display_name: d, .. }) => {
                    display_name = Some(d);
                    results.push(WriteResult { local_id: Some(SELF_ID.to_string()), error: None });
                }
                Ok(RosterCard::Entry { entry: e, .. }) => {
                    let id = entry_id(&self.protocol, &e.im_id);
                    if let Some(old) = replaces.as_deref().and_then(im_id_of).filter(|old| *old != e.im_id) {
                        removals.push(old);
                    }
                    removals.retain(|r| *r != e.im_id);
                    upserts.retain(|u| u.im_id != e.im_id);
                    upserts.push(e);
                    results.push(WriteResult { local_id: Some(id), error: None });
                }
                Err(why) => results.push(WriteResult { local_id: None, error: Some(why) }),
            }
        }
        let name = self.account.clone();
        self.with_store(|s| {
            s.change_roster(&name, &upserts, &removals)?;
            if let Some(d) = display_name {
                if let Some(mut a) = s.account(&name)? {
                    if a.display_name != d {
                        a.display_name = d;
                        s.save_account(&a)?;
                    }
                }
            }
            Ok(())
        })?;
        tracing::info!(account = %self.account, written = upserts.len(), removed = removals.len(), "roster written");
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::WireFormat;

    fn round_trip(item: &Item) -> Item {
        let wire = item.to_wire(WireFormat::VCard30);
        Item::from_wire(&wire, WireFormat::VCard30).unwrap()
    }

    #[test]
    fn entries_survive_the_wire() {
        let entries = [
            RosterEntry::new("bob@example.org", "Bob", &["Work", "Friends, old"], Subscription::Both),
            RosterEntry::new("carol@example.org", "", &[], Subscription::To),
            RosterEntry::new("odd;id, with space%", "Ödön \\ Ünal", &["a;b"], Subscription::From),
        ];
        for e in &entries {
            let item = entry_to_item("xmpp", e);
            let wire = String::from_utf8(item.to_wire(WireFormat::VCard30)).unwrap();
            assert!(wire.contains("IMPP:xmpp:"), "{wire}");
            assert!(wire.contains("X-IMSYNC-SUBSCRIPTION:"), "{wire}");
            let want = RosterCard::Entry { protocol: "xmpp".into(), entry: e.clone() };
            assert_eq!(card_from_item(&round_trip(&item)).unwrap(), want, "{wire}");
        }
    }

    #[test]
    fn own_card_is_recognised_even_without_x_properties() {
        let mut a = Account::new("matrix", "@alice:example.org");
        a.display_name = "Alice".into();
        let item = own_to_item(&a);
        let want = RosterCard::Own {
            protocol: "matrix".into(),
            im_id: "@alice:example.org".into(),
            display_name: "Alice".into(),
        };
        assert_eq!(card_from_item(&round_trip(&item)).unwrap(), want);
        // a server that drops X- properties still keeps N
        let Item::Contact(mut c) = item else { unreachable!() };
        c.extra.clear();
        assert_eq!(card_from_item(&round_trip(&Item::Contact(c))).unwrap(), want);
    }

    #[test]
    fn bad_cards_are_refused() {
        let no_impp = Item::Contact(Contact { formatted_name: Some("x".into()), ..Default::default() });
        assert!(card_from_item(&no_impp).is_err());
        let mut e = entry_to_item("xmpp", &RosterEntry::new("b@x", "", &[], Subscription::None));
        if let Item::Contact(c) = &mut e {
            c.extra = vec![Property::text(SUBSCRIPTION_PROPERTY, "sideways")];
        }
        assert!(card_from_item(&e).is_err());
    }

    #[tokio::test]
    async fn lists_and_writes_through_the_store() {
        let mut store = Store::open_in_memory().unwrap();
        let mut a = Account::new("xmpp", "alice@example.org");
        a.display_name = "Alice".into();
        store.save_account(&a).unwrap();
        let store = Arc::new(Mutex::new(store));
        let mut src = RosterSource::new(Arc::clone(&store), &a);
        let r0 = src.revision().await.unwrap();
        let bob = RosterEntry::new("bob@x", "Bob", &["Work"], Subscription::Both);
        let mut renamed_self = a.clone();
        renamed_self.display_name = "Alice B.".into();
        let other = Account::new("xmpp", "mallory@example.org");
        let res = src
            .write(vec![
                WriteOp::Add(entry_to_item("xmpp", &bob)),
                WriteOp::Add(own_to_item(&renamed_self)),
                WriteOp::Add(own_to_item(&other)),
                WriteOp::Add(entry_to_item("matrix", &bob)),
                WriteOp::Delete { local_id: SELF_ID.into() },
            ])
            .await
            .unwrap();
        assert_eq!(res[0], WriteResult { local_id: Some("xmpp:bob@x".into()), error: None });
        assert_eq!(res[1].error, None);
        assert!(res[2].error.as_deref().unwrap().contains("mallory"));
        assert!(res[3].error.is_some());
        assert!(res[4].error.is_some());
        assert_ne!(src.revision().await.unwrap(), r0);
        let listed = src.list().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(store.lock().unwrap().roster(&a.name()).unwrap(), vec![bob.clone()]);
        assert_eq!(store.lock().unwrap().account(&a.name()).unwrap().unwrap().display_name, "Alice B.");
        let res = src.write(vec![WriteOp::Delete { local_id: "xmpp:bob@x".into() }]).await.unwrap();
        assert_eq!(res[0].error, None);
        assert!(store.lock().unwrap().roster(&a.name()).unwrap().is_empty());
    }
}
