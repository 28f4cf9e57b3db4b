//! The universal interface: every platform store the phone keeps personal data in
//! (evolution-data-server's address books, later calendars, ModemManager's SMS, ...)
//! is adapted into one [`Source`], which yields items of the common item model
//! ([`crate::item::Item`]). Nothing outside this module tree knows platform names.

pub mod eds;
pub mod modemmanager;
pub mod roster;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::class::DataClass;
use crate::item::Item;
use crate::profile::{Account, Store};

/// What opening the stores of a job needs: the phone's bus (a connection the caller keeps
/// for the whole job: EDS drops opened books when their opener leaves the bus), the state
/// store (the roster lives there) and the account the job is for.
pub struct SourceContext<'a> {
    pub conn: &'a zbus::Connection,
    pub store: &'a Arc<Mutex<Store>>,
    pub account: &'a Account,
    /// The service's state directory (sources that keep files of their own put them there).
    pub state_dir: Option<&'a std::path::Path>,
}

/// One item read from a source: the source's own identifier for it and the item,
/// or the reason it could not be converted (reported per item, never fatal).
#[derive(Debug)]
pub struct SourceItem {
    /// The platform's stable identifier of the item (EDS: the UID).
    pub local_id: String,
    pub item: Result<Item, String>,
    /// A digest of the item exactly as the store gave it (before conversion), for stores
    /// that can skip converting items the caller already knows (see [`Source::list_pages`]).
    pub digest: Option<[u8; 16]>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The platform service is not on the bus and cannot be started.
    #[error("{service} is not available: {detail}")]
    Unavailable { service: String, detail: String },
    /// The store was opened but an operation on it failed.
    #[error("{store}: {detail}")]
    Store { store: String, detail: String },
    #[error("D-Bus: {0}")]
    DBus(#[from] zbus::Error),
}

/// One page of a listing (see [`Source::list_pages`]).
#[derive(Debug)]
pub enum Page {
    Items(Vec<SourceItem>),
    /// Items whose digest was in the caller's `known` set: not converted; the digests only.
    Unchanged(Vec<[u8; 16]>),
    /// The store changed while it was read: forget the pages given so far, the listing
    /// starts over.
    Restart,
}

/// A change to write into a store (restore).
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create the item; the store may keep the item's UID (EDS does) or assign one.
    Add(Item),
    /// Replace the whole item `local_id`.
    Replace { local_id: String, item: Item },
    Delete { local_id: String },
}

/// The outcome of one [`WriteOp`], in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// The item's local id after the write (for `Add`: the one the store assigned).
    pub local_id: Option<String>,
    /// Why the op failed; `None` = done.
    pub error: Option<String>,
}

/// A store of one data class on the phone.
#[async_trait]
pub trait Source: Send {
    /// The data class this store holds.
    fn class(&self) -> DataClass;
    /// A stable identifier of the store, unique on this phone, e.g. `eds:system-address-book`.
    fn id(&self) -> &str;
    /// A name for people (the store's display name).
    fn display_name(&self) -> &str;
    /// A token that changes whenever any item of the store changes (EDS: `Revision`).
    /// An unchanged token means no item needs to be read.
    async fn revision(&mut self) -> Result<String, SourceError>;
    /// Every item of the store, in the common item model.
    async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError>;
    /// Every item of the store, page by page to `sink`, so that a caller that keeps less
    /// than the items (a backup keeps their wire form and hash) never holds the whole store
    /// in memory. A store that can digest its raw items does not convert those whose
    /// [`SourceItem::digest`] is in `known` (they come as [`Page::Unchanged`]). A store that
    /// cannot page gives [`Source::list`] as one page.
    async fn list_pages(
        &mut self,
        known: &HashSet<[u8; 16]>,
        sink: &mut (dyn FnMut(Page) + Send),
    ) -> Result<(), SourceError> {
        let _ = known;
        let items = self.list().await?;
        sink(Page::Items(items));
        Ok(())
    }
    /// Pull-style listing, for a caller that sends items while it lists (a first backup streams
    /// a large address book into the SyncML session a page at a time). `restart == true` starts a
    /// new listing from the first item; later calls with `false` continue it. `Ok(None)`: the
    /// listing is complete (and its resources, e.g. an EDS cursor, are released). Pages may repeat
    /// an item (a contact renamed while listed can come twice; a listing reopened because the store
    /// changed starts over): callers de-duplicate by local id. Default: `list()` as one page.
    async fn next_page(&mut self, restart: bool) -> Result<Option<Vec<SourceItem>>, SourceError> {
        if restart {
            Ok(Some(self.list().await?))
        } else {
            Ok(None)
        }
    }
    /// How many items the store holds now, if it can tell cheaply (EDS address book: the
    /// cursor's `Total`); `None` otherwise (the default).
    async fn count(&mut self) -> Result<Option<u32>, SourceError> {
        Ok(None)
    }
    /// Whether items can be written into the store (restore).
    fn writable(&self) -> bool {
        false
    }
    /// Write `ops` into the store. One result per op, in order; a failing op does not stop
    /// the others. `Err` only when the store as a whole cannot be written.
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, SourceError> {
        let _ = ops;
        Err(SourceError::Store { store: self.id().to_string(), detail: "this store cannot be written".into() })
    }
}

/// Open every enabled store of `class` on this phone for the job described by `ctx`.
pub async fn open_sources(class: DataClass, ctx: &SourceContext<'_>) -> Result<Vec<Box<dyn Source>>, SourceError> {
    let conn = ctx.conn;
    if class == DataClass::Roster {
        // The friend list the chat app handed over, kept in the state store.
        return Ok(vec![Box::new(roster::RosterSource::new(Arc::clone(ctx.store), ctx.account))]);
    }
    if class == DataClass::Sms {
        // ModemManager lives on the system bus, not on `conn` (the session bus). No modem /
        // no ModemManager: `SourceError::Unavailable`, never an empty list.
        return modemmanager::open_sources(ctx.state_dir.map(std::path::Path::to_path_buf)).await;
    }
    match eds::EdsSourceKind::for_class(class) {
        Some(kind) => {
            let eds = eds::Eds::new(conn.clone()).await?;
            let mut out: Vec<Box<dyn Source>> = Vec::new();
            for info in eds.sources(kind).await? {
                out.push(eds.open_source(&info).await?);
            }
            Ok(out)
        }
        None => Err(SourceError::Unavailable {
            service: format!("a phone store for {class}"),
            detail: "this version of imsync cannot read this class from the phone yet".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Contact;

    /// A store that can only list everything at once.
    struct TwoItems;

    #[async_trait]
    impl Source for TwoItems {
        fn class(&self) -> DataClass {
            DataClass::Contacts
        }
        fn id(&self) -> &str {
            "test:two"
        }
        fn display_name(&self) -> &str {
            "Two"
        }
        async fn revision(&mut self) -> Result<String, SourceError> {
            Ok("1".into())
        }
        async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError> {
            Ok(["a", "b"]
                .into_iter()
                .map(|uid| SourceItem {
                    local_id: uid.into(),
                    item: Ok(Item::Contact(Contact { uid: Some(uid.into()), ..Contact::default() })),
                    digest: None,
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn by_default_the_pull_listing_is_list_as_one_page() {
        let mut src = TwoItems;
        let page = src.next_page(true).await.unwrap().expect("one page");
        let ids: Vec<&str> = page.iter().map(|i| i.local_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(src.next_page(false).await.unwrap().is_none());
        assert_eq!(src.count().await.unwrap(), None);
    }
}
