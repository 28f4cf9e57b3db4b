//! Test-side client of the real evolution-data-server over D-Bus (zbus):
//! wait for the source registry, open `system-address-book`, create /
//! modify / remove / list contacts, kill the address-book factory.
//!
//! An opened book only lives while the connection that opened it is on the
//! bus, so [`AddressBook`] owns its connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{timeout, Result};

pub const SOURCES_NAME: &str = "org.gnome.evolution.dataserver.Sources5";
pub const SOURCES_PATH: &str = "/org/gnome/evolution/dataserver/SourceManager";
pub const BOOK_FACTORY_NAME: &str = "org.gnome.evolution.dataserver.AddressBook10";
pub const BOOK_FACTORY_PATH: &str = "/org/gnome/evolution/dataserver/AddressBookFactory";
pub const BOOK_FACTORY_IFACE: &str = "org.gnome.evolution.dataserver.AddressBookFactory";
pub const BOOK_IFACE: &str = "org.gnome.evolution.dataserver.AddressBook";
pub const SYSTEM_ADDRESS_BOOK: &str = "system-address-book";

/// Contacts per CreateContacts / ModifyContacts / RemoveContacts call
/// (one SQLite transaction each; 500 is 2-3x faster than 100).
pub const BATCH: usize = 500;

const CALL_TIMEOUT: Duration = Duration::from_secs(120);

type ManagedObjects = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedValue>>>;

/// Activate the source registry and wait until it lists `source_uid`.
pub async fn wait_for_source(conn: &zbus::Connection, source_uid: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut last_err;
    loop {
        let res: Result<ManagedObjects> = async {
            let p = zbus::Proxy::new(conn, SOURCES_NAME, SOURCES_PATH, "org.freedesktop.DBus.ObjectManager").await?;
            Ok(timeout(Duration::from_secs(20), p.call("GetManagedObjects", &())).await??)
        }
        .await;
        match res {
            Ok(objs) => {
                let found = objs.values().any(|ifaces| {
                    ifaces
                        .get("org.gnome.evolution.dataserver.Source")
                        .and_then(|props| props.get("UID"))
                        .and_then(|v| String::try_from(v.clone()).ok())
                        .is_some_and(|uid| uid == source_uid)
                });
                if found {
                    return Ok(());
                }
                last_err = format!("{} sources, none with UID {source_uid}", objs.len());
            }
            Err(e) => last_err = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(format!("EDS source registry did not list {source_uid} within {within:?}: {last_err}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An opened EDS address book (keeps the connection that opened it).
pub struct AddressBook {
    conn: zbus::Connection,
    source_uid: String,
    book: zbus::Proxy<'static>,
}

impl AddressBook {
    /// Open `system-address-book` on the bus at `address` (own connection).
    pub async fn open_system(address: &str) -> Result<AddressBook> {
        let conn = zbus::connection::Builder::address(address)?.build().await?;
        Self::open(conn, SYSTEM_ADDRESS_BOOK).await
    }

    pub async fn open(conn: zbus::Connection, source_uid: &str) -> Result<AddressBook> {
        wait_for_source(&conn, source_uid, Duration::from_secs(60)).await?;
        let book = Self::open_book(&conn, source_uid).await?;
        Ok(AddressBook { conn, source_uid: source_uid.to_string(), book })
    }

    async fn open_book(conn: &zbus::Connection, source_uid: &str) -> Result<zbus::Proxy<'static>> {
        let f = zbus::Proxy::new(conn, BOOK_FACTORY_NAME, BOOK_FACTORY_PATH, BOOK_FACTORY_IFACE).await?;
        // Open* returns the object path typed as `s`
        let (path, bus_name): (String, String) =
            timeout(CALL_TIMEOUT, f.call("OpenAddressBook", &(source_uid,))).await??;
        let book = zbus::proxy::Builder::<zbus::Proxy>::new(conn)
            .destination(bus_name)?
            .path(path)?
            .interface(BOOK_IFACE)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        // without Open every call fails with NOT_OPENED (code 20)
        let _props: Vec<String> = timeout(CALL_TIMEOUT, book.call("Open", &())).await??;
        Ok(book)
    }

    /// Open the book again (after the factory was killed or restarted; the
    /// old object path is then stale).
    pub async fn reopen(&mut self) -> Result<()> {
        self.book = Self::open_book(&self.conn, &self.source_uid).await?;
        Ok(())
    }

    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    pub fn object_path(&self) -> String {
        self.book.path().to_string()
    }

    /// Create contacts (batches of [`BATCH`]); returns the UIDs in order.
    pub async fn create_contacts(&self, vcards: &[String]) -> Result<Vec<String>> {
        let mut uids = Vec::with_capacity(vcards.len());
        for chunk in vcards.chunks(BATCH) {
            let got: Vec<String> = timeout(CALL_TIMEOUT, self.book.call("CreateContacts", &(chunk, 0u32))).await??;
            if got.len() != chunk.len() {
                return Err(format!("CreateContacts: sent {} vCards, got {} UIDs", chunk.len(), got.len()).into());
            }
            uids.extend(got);
        }
        Ok(uids)
    }

    /// Replace contacts (each vCard must carry its UID).
    pub async fn modify_contacts(&self, vcards: &[String]) -> Result<()> {
        for chunk in vcards.chunks(BATCH) {
            let () = timeout(CALL_TIMEOUT, self.book.call("ModifyContacts", &(chunk, 0u32))).await??;
        }
        Ok(())
    }

    pub async fn remove_contacts(&self, uids: &[String]) -> Result<()> {
        for chunk in uids.chunks(BATCH) {
            let () = timeout(CALL_TIMEOUT, self.book.call("RemoveContacts", &(chunk, 0u32))).await??;
        }
        Ok(())
    }

    /// All contacts (`GetContactList("")`), as EDS renders them.
    pub async fn list(&self) -> Result<Vec<String>> {
        Ok(timeout(CALL_TIMEOUT, self.book.call("GetContactList", &("",))).await??)
    }

    pub async fn list_uids(&self) -> Result<Vec<String>> {
        Ok(timeout(CALL_TIMEOUT, self.book.call("GetContactListUids", &("",))).await??)
    }

    pub async fn get(&self, uid: &str) -> Result<String> {
        Ok(timeout(CALL_TIMEOUT, self.book.call("GetContact", &(uid,))).await??)
    }

    /// The book's `Revision` property (changes on every write).
    pub async fn revision(&self) -> Result<String> {
        Ok(timeout(CALL_TIMEOUT, self.book.get_property::<String>("Revision")).await??)
    }
}

/// SIGKILL the process owning `org.gnome.evolution.dataserver.AddressBook10`
/// and wait until the name has no owner. Returns the killed PID, or `None`
/// if no factory was running. (Calling the name afterwards auto-starts a
/// new factory; opened books must be opened again.)
pub async fn kill_addressbook_factory(conn: &zbus::Connection) -> Result<Option<u32>> {
    let Some(pid) = crate::bus::name_owner_pid(conn, BOOK_FACTORY_NAME).await? else {
        return Ok(None);
    };
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let gone = crate::process::poll_async(Duration::from_secs(15), Duration::from_millis(20), || async {
        match crate::bus::name_has_owner(conn, BOOK_FACTORY_NAME).await {
            Ok(false) => Some(()),
            _ => None,
        }
    })
    .await;
    gone.ok_or_else(|| format!("{BOOK_FACTORY_NAME} still owned 15 s after SIGKILL of {pid}"))?;
    // The bus sees the name go when the socket closes, which can be a moment before the
    // process has finished dying: wait for that too.
    let dead = crate::process::poll_async(Duration::from_secs(15), Duration::from_millis(10), || async {
        (!crate::process::alive(pid)).then_some(())
    })
    .await;
    dead.ok_or_else(|| format!("factory {pid} still alive 15 s after SIGKILL"))?;
    Ok(Some(pid))
}
