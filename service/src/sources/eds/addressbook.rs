//! One EDS address book as a [`Source`].

use std::collections::HashSet;
use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine as _;
use zbus::proxy::CacheProperties;
use zbus::Connection;

use super::backend::{op_error, Backend, OpenFuture};
use super::proxies::{AddressBookCursorProxy, AddressBookFactoryProxy, AddressBookProxy};
use super::registry::EdsSourceInfo;
use crate::class::DataClass;
use crate::item::contact::{mime_from_type_token, sniff_image_mime};
use crate::item::{Contact, Item, Param, Photo, Property, WireFormat};
use crate::sources::{Page, Source, SourceError, SourceItem, WriteOp, WriteResult};

/// The query that selects every contact.
const ALL: &str = "";
/// Contacts per CreateContacts / ModifyContacts / RemoveContacts call (each call is one
/// SQLite transaction and one revision bump; batches of 500–2000 are 2–3× faster than
/// batches of 100).
const BATCH: usize = 500;
/// Contacts per cursor step of a paged listing.
const PAGE: i32 = 500;
/// Cursor step flags and origins (`EBookCursorStepFlags`, `EBookCursorOrigin`).
const STEP_MOVE_FETCH: i32 = 1 | 2;
const ORIGIN_CURRENT: i32 = 0;
const ORIGIN_BEGIN: i32 = 1;
/// How often one pull-style listing ([`Source::next_page`]) is reopened because the book
/// changed while it was read, before the step's error is returned.
const REOPENINGS: u32 = 3;

/// An EDS address book (data class contacts, id `eds:<source uid>`).
///
/// The book stays open as long as the [`zbus::Connection`] it was opened on is on the
/// bus. If EDS restarts its factory (or the book is closed under us), the next call
/// reopens it once and retries.
pub struct AddressBook {
    backend: Backend<AddressBookProxy<'static>>,
    info: EdsSourceInfo,
    writable: bool,
    /// The pull-style listing ([`Source::next_page`]).
    listing: Listing,
}

/// Where the pull-style listing of a book stands.
enum Listing {
    /// None started, or the last one failed: the next call starts one.
    Idle,
    Open(Paging),
    /// The last listing was read to its end (its cursor is disposed): `next_page(false)`
    /// says so again.
    Complete,
}

/// An EDS cursor. EDS keeps a cursor until it is disposed or its client leaves the bus, so
/// one that is dropped undisposed (a listing abandoned by a failed or cancelled backup, a
/// `next_page` cancelled mid-call, the source dropped) is disposed by a task of its own.
struct Cursor(Option<AddressBookCursorProxy<'static>>);

impl Cursor {
    async fn dispose(mut self) {
        if let Some(cursor) = self.0.take() {
            let _ = cursor.dispose().await;
        }
    }
}

impl std::ops::Deref for Cursor {
    type Target = AddressBookCursorProxy<'static>;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("a cursor is used only until disposed")
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let Some(cursor) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = cursor.dispose().await;
                });
            }
            Err(_) => tracing::debug!(path = %cursor.inner().path(), "no runtime to dispose an EDS cursor"),
        }
    }
}

/// An open cursor of a pull-style listing.
struct Paging {
    cursor: Cursor,
    /// The book's revision when the cursor was opened: the guard of every step.
    revision: String,
    /// Where the next step starts: `ORIGIN_BEGIN`, then `ORIGIN_CURRENT`.
    origin: i32,
    /// How often this listing was reopened because the book changed.
    reopened: u32,
}

/// One page read by [`AddressBook::step`].
struct Step {
    /// The contacts whose digest the caller did not know, converted.
    items: Vec<SourceItem>,
    /// The digests of the others.
    unchanged: Vec<[u8; 16]>,
    /// A short page: the cursor is at the end.
    last: bool,
}

impl std::fmt::Debug for AddressBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressBook")
            .field("backend", &self.backend)
            .field("path", &self.backend.proxy().inner().path().as_str())
            .finish()
    }
}

fn open_book(
    conn: Connection,
    factory: String,
    uid: String,
) -> OpenFuture<AddressBookProxy<'static>> {
    Box::pin(async move {
        let f = AddressBookFactoryProxy::builder(&conn)
            .destination(factory)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let (path, bus_name) = f.open_address_book(&uid).await?;
        let proxy = AddressBookProxy::builder(&conn)
            .destination(bus_name.clone())?
            .path(path)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        proxy.open().await?;
        Ok((bus_name, proxy))
    })
}

/// What one write run does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Create,
    Modify,
    Remove,
}

impl AddressBook {
    /// `OpenAddressBook(uid)` on the factory `factory`, then `Open()` on the result.
    pub(crate) async fn open(
        conn: Connection,
        factory: String,
        info: EdsSourceInfo,
    ) -> Result<AddressBook, SourceError> {
        let mut backend =
            Backend::open(conn, factory, info.uid.clone(), "address book", open_book).await?;
        let writable = backend
            .call("reading Writable", |p| async move { p.writable().await })
            .await?;
        Ok(AddressBook {
            backend,
            info,
            writable,
            listing: Listing::Idle,
        })
    }

    /// The source this book was opened from.
    pub fn info(&self) -> &EdsSourceInfo {
        &self.info
    }

    /// The D-Bus proxy of the opened book (bus name and path as returned by the
    /// factory). Changes after a reopen.
    pub fn proxy(&self) -> &AddressBookProxy<'static> {
        self.backend.proxy()
    }

    /// Converts one vCard from EDS into a [`SourceItem`], re-embedding photos that the
    /// backend keeps in files.
    pub(super) async fn convert(vcard: String) -> SourceItem {
        let digest = crate::engine::tracker::digest(vcard.as_bytes());
        AddressBook::convert_digested(vcard, digest).await
    }

    /// [`AddressBook::convert`] of a vCard whose digest the caller already computed.
    async fn convert_digested(vcard: String, digest: [u8; 16]) -> SourceItem {
        let digest = Some(digest);
        let item = Item::from_wire(vcard.as_bytes(), WireFormat::VCard30);
        let local_id = match &item {
            Ok(i) => i.uid().unwrap_or_default().to_string(),
            Err(_) => raw_uid(&vcard).unwrap_or_default(),
        };
        let item = match item {
            Err(e) => Err(e.to_string()),
            Ok(_) if local_id.is_empty() => Err("contact without UID".to_string()),
            Ok(Item::Contact(mut c)) => match embed_file_images(&mut c).await {
                Ok(()) => Ok(Item::Contact(c)),
                Err(e) => Err(e),
            },
            Ok(other) => Err(format!("not a contact: {other:?}")),
        };
        SourceItem { local_id, item, digest }
    }

    /// A [`SourceError::Store`] of the book for a failed cursor call.
    fn cursor_error(&self, what: &str, e: zbus::Error) -> SourceError {
        SourceError::Store { store: self.backend.id().to_string(), detail: format!("{what}: {e}") }
    }

    /// `GetCursor` over every contact, by family then given name. The cursor lives in EDS
    /// until disposed (or until we leave the bus).
    async fn open_cursor(&mut self) -> Result<Cursor, SourceError> {
        let path = self
            .backend
            .call("opening a cursor", |p| async move {
                p.get_cursor(ALL, &["family_name", "given_name"], &["ascending", "ascending"]).await
            })
            .await?;
        let proxy = self.proxy();
        let cursor = async {
            AddressBookCursorProxy::builder(proxy.inner().connection())
                .destination(proxy.inner().destination().to_owned())?
                .path(path)?
                .cache_properties(CacheProperties::No)
                .build()
                .await
        };
        cursor.await.map(|c| Cursor(Some(c))).map_err(|e| self.cursor_error("opening a cursor", e))
    }

    /// The next `PAGE` contacts of `cursor` from `origin`, guarded by `revision` (the step
    /// fails if the book changed since). Contacts whose digest is in `known` are not parsed.
    async fn step(
        cursor: &AddressBookCursorProxy<'_>,
        revision: &str,
        origin: i32,
        known: &HashSet<[u8; 16]>,
    ) -> zbus::Result<Step> {
        let (got, vcards, _total, _position) = cursor.step(revision, STEP_MOVE_FETCH, origin, PAGE).await?;
        let mut items = Vec::with_capacity(vcards.len());
        let mut unchanged = Vec::new();
        for v in vcards {
            let digest = crate::engine::tracker::digest(v.as_bytes());
            if known.contains(&digest) {
                unchanged.push(digest);
            } else {
                items.push(AddressBook::convert_digested(v, digest).await);
            }
        }
        Ok(Step { items, unchanged, last: got < PAGE })
    }

    /// Every contact through an EDS cursor, `PAGE` at a time, guarded by `revision` (a step
    /// fails if the book changed since).
    pub(super) async fn cursor_pages(
        &mut self,
        revision: &str,
        known: &HashSet<[u8; 16]>,
        sink: &mut (dyn FnMut(Page) + Send),
    ) -> Result<(), SourceError> {
        let cursor = self.open_cursor().await?;
        let mut origin = ORIGIN_BEGIN;
        let result = loop {
            match AddressBook::step(&cursor, revision, origin, known).await {
                Ok(step) => {
                    origin = ORIGIN_CURRENT;
                    if !step.unchanged.is_empty() {
                        sink(Page::Unchanged(step.unchanged));
                    }
                    sink(Page::Items(step.items));
                    if step.last {
                        break Ok(());
                    }
                }
                Err(e) => break Err(self.cursor_error("listing contacts", e)),
            }
        };
        cursor.dispose().await;
        result
    }

    /// A new cursor for a pull-style listing, guarded by the book's revision now.
    async fn open_paging(&mut self, reopened: u32) -> Result<Paging, SourceError> {
        let revision = self.revision().await?;
        let cursor = self.open_cursor().await?;
        Ok(Paging { cursor, revision, origin: ORIGIN_BEGIN, reopened })
    }

    /// One EDS call for `args` (vCards, or UIDs for Remove). `Ok(Err)`: EDS rejected the
    /// call; `Err`: the book cannot be reached.
    async fn run(
        &mut self,
        verb: Verb,
        args: &[String],
    ) -> Result<Result<Vec<String>, String>, SourceError> {
        let args = args.to_vec();
        let res = match verb {
            Verb::Create => {
                self.backend
                    .call("creating contacts", |p| {
                        let args = args.clone();
                        async move {
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            p.create_contacts(&refs, 0).await
                        }
                    })
                    .await
            }
            Verb::Modify => {
                self.backend
                    .call("modifying contacts", |p| {
                        let args = args.clone();
                        async move {
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            p.modify_contacts(&refs, 0).await.map(|()| Vec::new())
                        }
                    })
                    .await
            }
            Verb::Remove => {
                self.backend
                    .call("removing contacts", |p| {
                        let args = args.clone();
                        async move {
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            p.remove_contacts(&refs, 0).await.map(|()| Vec::new())
                        }
                    })
                    .await
            }
        };
        match res {
            Ok(v) => Ok(Ok(v)),
            Err(e) => op_error(e).map(Err),
        }
    }

    /// Runs `verb` over a run of ops in batches; a failed batch is retried one op at a
    /// time so that one bad contact does not fail the others. `ids[i]` is the local id
    /// reported for op `i` (for Create: `None`, EDS reports it).
    async fn run_batched(
        &mut self,
        verb: Verb,
        args: Vec<String>,
        ids: Vec<Option<String>>,
    ) -> Result<Vec<WriteResult>, SourceError> {
        let mut out = Vec::with_capacity(args.len());
        for (chunk, chunk_ids) in args.chunks(BATCH).zip(ids.chunks(BATCH)) {
            match self.run(verb, chunk).await? {
                Ok(uids) if verb != Verb::Create || uids.len() == chunk.len() => {
                    for (i, id) in chunk_ids.iter().enumerate() {
                        let local_id = if verb == Verb::Create {
                            uids.get(i).cloned()
                        } else {
                            id.clone()
                        };
                        out.push(WriteResult {
                            local_id,
                            error: None,
                        });
                    }
                }
                first_error => {
                    if chunk.len() == 1 {
                        let error = match first_error {
                            Err(e) => e,
                            Ok(uids) => format!("EDS returned {} UIDs for one contact", uids.len()),
                        };
                        out.push(WriteResult {
                            local_id: chunk_ids[0].clone(),
                            error: Some(error),
                        });
                        continue;
                    }
                    tracing::info!(book = %self.backend.id(), "a batch of {} failed, writing one by one", chunk.len());
                    for (arg, id) in chunk.iter().zip(chunk_ids) {
                        let res = match self.run(verb, std::slice::from_ref(arg)).await? {
                            Ok(uids) if verb == Verb::Create => match uids.into_iter().next() {
                                Some(uid) => WriteResult {
                                    local_id: Some(uid),
                                    error: None,
                                },
                                None => WriteResult {
                                    local_id: None,
                                    error: Some("EDS returned no UID".into()),
                                },
                            },
                            Ok(_) => WriteResult {
                                local_id: id.clone(),
                                error: None,
                            },
                            Err(e) => WriteResult {
                                local_id: id.clone(),
                                error: Some(e),
                            },
                        };
                        out.push(res);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The UID of a vCard that failed to parse, by a plain line scan.
fn raw_uid(vcard: &str) -> Option<String> {
    vcard.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("UID")
            .then(|| value.trim().to_string())
    })
}

/// The path of a `file:` URI value.
fn file_uri_path(p: &Property) -> Option<PathBuf> {
    let uri = p.text_value();
    if !uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
    {
        return None;
    }
    url::Url::parse(uri.trim()).ok()?.to_file_path().ok()
}

/// The MIME type EDS encodes in a photo file name (`…photo-file0.image-2FPNG`).
fn mime_from_eds_file_name(path: &std::path::Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    let decoded = ext.replace("-2F", "/").replace("-2f", "/");
    decoded.contains('/').then(|| decoded.to_ascii_lowercase())
}

/// Replaces `PHOTO`/`LOGO` properties that point at local files by the files' bytes.
/// An unreadable file is an error for this contact. Other URIs (http…) stay as they are.
async fn embed_file_images(c: &mut Contact) -> Result<(), String> {
    let mut kept = Vec::with_capacity(c.extra.len());
    for p in std::mem::take(&mut c.extra) {
        let is_image = p.name == "PHOTO" || p.name == "LOGO";
        let path = if is_image && !p.is_binary() {
            file_uri_path(&p)
        } else {
            None
        };
        let Some(path) = path else {
            kept.push(p);
            continue;
        };
        let data = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read the {} file {}: {e}", p.name, path.display()))?;
        let mime = sniff_image_mime(&data)
            .map(str::to_string)
            .or_else(|| p.param_values("TYPE").find_map(mime_from_type_token))
            .or_else(|| mime_from_eds_file_name(&path))
            .unwrap_or_else(|| "application/octet-stream".to_string());
        if p.name == "PHOTO" && c.photo.is_none() {
            c.photo = Some(Photo { data, mime });
        } else {
            let mut params = vec![Param::new("ENCODING", &["b"])];
            if let Some(t) = crate::item::contact::type_token_from_mime(&mime) {
                params.push(Param::new("TYPE", &[&t]));
            }
            kept.push(Property {
                group: p.group.clone(),
                name: p.name.clone(),
                params,
                value: base64::engine::general_purpose::STANDARD.encode(&data),
            });
        }
    }
    c.extra = kept;
    Ok(())
}

#[async_trait]
impl Source for AddressBook {
    fn class(&self) -> DataClass {
        DataClass::Contacts
    }

    fn id(&self) -> &str {
        self.backend.id()
    }

    fn display_name(&self) -> &str {
        &self.info.display_name
    }

    async fn revision(&mut self) -> Result<String, SourceError> {
        self.backend
            .call("reading Revision", |p| async move { p.revision().await })
            .await
    }

    /// `GetContactList("")`: one reply with every vCard (≈425 bytes per contact without
    /// photos; 10 000 contacts are ≈4 MB). Measured on 10 000 contacts (test profile,
    /// private bus, `measure_*` tests): GetContactList + conversion 0.50–0.53 s, peak RSS
    /// +16.3 MB; a cursor in steps of 500 0.86–1.0 s, peak RSS +16.0 MB. The result is
    /// collected in full anyway, so the cursor saves almost no memory and costs time (and
    /// a revision guard that fails if the book changes mid-way). The D-Bus message limit
    /// (128 MiB) is reached only near 300 000 contacts.
    async fn list(&mut self) -> Result<Vec<SourceItem>, SourceError> {
        let vcards = self
            .backend
            .call("listing contacts", |p| async move {
                p.get_contact_list(ALL).await
            })
            .await?;
        let mut items = Vec::with_capacity(vcards.len());
        for v in vcards {
            items.push(AddressBook::convert(v).await);
        }
        Ok(items)
    }

    /// Through a cursor, 500 contacts a step: a backup of 10 000 contacts then never holds
    /// more than one page of parsed contacts (with `GetContactList` the whole reply, its
    /// strings and the parsed contacts were alive at once: +16 MB). If the book changes
    /// while it is read (the cursor's revision guard fails), the listing starts over.
    async fn list_pages(
        &mut self,
        known: &HashSet<[u8; 16]>,
        sink: &mut (dyn FnMut(Page) + Send),
    ) -> Result<(), SourceError> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let revision = self.revision().await?;
            match self.cursor_pages(&revision, known, sink).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < ATTEMPTS && self.revision().await? != revision => {
                    tracing::debug!(book = %self.info.uid, error = %e, "address book changed while listed; starting over");
                    sink(Page::Restart);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// One cursor step of 500 contacts a call (see [`AddressBook::cursor_pages`]); the cursor
    /// is disposed with the last (short) page. If a step fails because the book changed since
    /// the cursor was opened, the listing is reopened at the new revision and its first page
    /// is given (at most three times per listing). `next_page(false)` with no listing started
    /// (or after one failed) starts one; after a complete listing it is `None` again.
    async fn next_page(&mut self, restart: bool) -> Result<Option<Vec<SourceItem>>, SourceError> {
        let mut paging = match std::mem::replace(&mut self.listing, Listing::Idle) {
            Listing::Open(paging) if !restart => paging,
            Listing::Complete if !restart => {
                self.listing = Listing::Complete;
                return Ok(None);
            }
            open => {
                if let Listing::Open(old) = open {
                    old.cursor.dispose().await;
                }
                self.open_paging(0).await?
            }
        };
        let none = HashSet::new();
        loop {
            match AddressBook::step(&paging.cursor, &paging.revision, paging.origin, &none).await {
                Ok(step) => {
                    if step.last {
                        paging.cursor.dispose().await;
                        self.listing = Listing::Complete;
                    } else {
                        paging.origin = ORIGIN_CURRENT;
                        self.listing = Listing::Open(paging);
                    }
                    return Ok(Some(step.items));
                }
                Err(e) => {
                    paging.cursor.dispose().await;
                    let error = self.cursor_error("listing contacts", e);
                    if paging.reopened >= REOPENINGS || self.revision().await? == paging.revision {
                        return Err(error);
                    }
                    tracing::info!(book = %self.info.uid, %error, "address book changed while listed; starting over");
                    paging = self.open_paging(paging.reopened + 1).await?;
                }
            }
        }
    }

    /// The `Total` of a cursor over every contact (opened for this and disposed).
    async fn count(&mut self) -> Result<Option<u32>, SourceError> {
        let cursor = self.open_cursor().await?;
        let total = cursor.total().await;
        cursor.dispose().await;
        total.map(Some).map_err(|e| self.cursor_error("counting contacts", e))
    }

    fn writable(&self) -> bool {
        self.writable
    }

    /// Add → `CreateContacts` (the contact's UID and REV are kept; without UID, EDS assigns
    /// one), Replace → `ModifyContacts` (the UID is set to `local_id`), Delete →
    /// `RemoveContacts`. Consecutive ops of the same kind go in batches of 500; a failed
    /// batch (EDS writes a batch all-or-nothing) is retried one contact at a time.
    /// Photos go inline (`PHOTO;ENCODING=b`); EDS moves them into files itself. The
    /// anniversary is written as EDS's `X-EVOLUTION-ANNIVERSARY`.
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, SourceError> {
        let mut results = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while let Some(first) = ops.next() {
            let verb_of = |op: &WriteOp| match op {
                WriteOp::Add(_) => Verb::Create,
                WriteOp::Replace { .. } => Verb::Modify,
                WriteOp::Delete { .. } => Verb::Remove,
            };
            let verb = verb_of(&first);
            let mut run = vec![first];
            while let Some(next) = ops.next_if(|o| verb_of(o) == verb) {
                run.push(next);
            }
            // Ops that cannot be written at all get their result in place.
            let mut slots: Vec<Option<WriteResult>> = Vec::with_capacity(run.len());
            let mut args = Vec::new();
            let mut ids = Vec::new();
            for op in run {
                let prepared = match op {
                    WriteOp::Add(Item::Contact(c)) => Ok((c.to_eds_vcard(), c.uid.clone())),
                    WriteOp::Replace {
                        local_id,
                        item: Item::Contact(mut c),
                    } => {
                        c.uid = Some(local_id.clone());
                        Ok((c.to_eds_vcard(), Some(local_id)))
                    }
                    WriteOp::Delete { local_id } => Ok((local_id.clone(), Some(local_id))),
                    WriteOp::Add(_) => {
                        Err((None, "only contacts can be written into an address book"))
                    }
                    WriteOp::Replace { local_id, .. } => Err((
                        Some(local_id),
                        "only contacts can be written into an address book",
                    )),
                };
                match prepared {
                    Ok((arg, id)) => {
                        args.push(arg);
                        ids.push(id);
                        slots.push(None);
                    }
                    Err((id, why)) => slots.push(Some(WriteResult {
                        local_id: id,
                        error: Some(why.to_string()),
                    })),
                }
            }
            let mut done = self.run_batched(verb, args, ids).await?.into_iter();
            for slot in slots {
                results.push(match slot {
                    Some(r) => r,
                    None => done.next().unwrap_or(WriteResult {
                        local_id: None,
                        error: Some("no result".into()),
                    }),
                });
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eds_photo_file_names() {
        let p = std::path::Path::new("/x/photos/pas_id_1_photo-file0.image-2FPNG");
        assert_eq!(mime_from_eds_file_name(p).as_deref(), Some("image/png"));
        assert_eq!(
            mime_from_eds_file_name(std::path::Path::new("/x/a.jpg")),
            None
        );
    }

    #[test]
    fn uid_of_broken_vcard() {
        assert_eq!(
            raw_uid("BEGIN:VCARD\r\nuid:abc \r\nFOO").as_deref(),
            Some("abc")
        );
        assert_eq!(raw_uid("junk"), None);
    }

    #[tokio::test]
    async fn file_photos_are_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
            .unwrap();
        let path = dir.path().join("pas_id_X_photo-file0.image-2FPNG");
        std::fs::write(&path, &png).unwrap();
        let vcard = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nPHOTO;VALUE=uri:{}\r\nLOGO;VALUE=uri:{}\r\nEND:VCARD",
            url::Url::from_file_path(&path).unwrap(),
            url::Url::from_file_path(&path).unwrap()
        );
        let item = AddressBook::convert(vcard).await;
        assert_eq!(item.local_id, "x");
        let Ok(Item::Contact(c)) = item.item else {
            panic!("{:?}", item.item)
        };
        assert_eq!(
            c.photo,
            Some(Photo {
                data: png.clone(),
                mime: "image/png".into()
            })
        );
        assert_eq!(c.extra.len(), 1);
        assert_eq!(c.extra[0].name, "LOGO");
        assert!(c.extra[0].is_binary());

        let missing = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:y\r\nPHOTO;VALUE=uri:file:///nonexistent/p.png\r\nEND:VCARD";
        let item = AddressBook::convert(missing.to_string()).await;
        assert_eq!(item.local_id, "y");
        assert!(item.item.unwrap_err().contains("/nonexistent/p.png"));

        let http = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:z\r\nPHOTO;VALUE=uri:http://example.org/p.png\r\nEND:VCARD";
        let Ok(Item::Contact(c)) = AddressBook::convert(http.to_string()).await.item else {
            panic!()
        };
        assert!(c.photo.is_none());
        assert_eq!(c.extra[0].value, "http://example.org/p.png");

        let broken =
            AddressBook::convert("BEGIN:VCARD\r\nUID:b\r\nno colon\r\nEND:VCARD".into()).await;
        assert_eq!(broken.local_id, "b");
        assert!(broken.item.is_err());
    }
}
