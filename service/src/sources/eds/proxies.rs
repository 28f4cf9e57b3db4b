//! zbus proxies for the evolution-data-server D-Bus interfaces imsync uses.
//!
//! No default bus names: EDS versions its names (`AddressBook10`, `Sources5`, …), and
//! they are discovered at run time (see `registry::discover_services`). Opened books
//! live at paths returned by the factory, on the bus name it returns.

use zbus::zvariant::OwnedObjectPath;

/// `…AddressBookFactory` on `org.gnome.evolution.dataserver.AddressBook<N>`.
#[zbus::proxy(
    interface = "org.gnome.evolution.dataserver.AddressBookFactory",
    default_path = "/org/gnome/evolution/dataserver/AddressBookFactory",
    gen_blocking = false
)]
pub trait AddressBookFactory {
    /// Returns `(object_path, bus_name)` of the opened book (both typed `s`).
    fn open_address_book(&self, source_uid: &str) -> zbus::Result<(String, String)>;
}

/// An opened address book.
#[zbus::proxy(
    interface = "org.gnome.evolution.dataserver.AddressBook",
    gen_blocking = false
)]
pub trait AddressBook {
    /// Must be called after `OpenAddressBook`; returns name/value pairs.
    fn open(&self) -> zbus::Result<Vec<String>>;
    /// Drops this client's reference; the path may disappear.
    fn close(&self) -> zbus::Result<()>;
    fn get_contact_list(&self, query: &str) -> zbus::Result<Vec<String>>;
    fn get_contact_list_uids(&self, query: &str) -> zbus::Result<Vec<String>>;
    fn get_contact(&self, uid: &str) -> zbus::Result<String>;
    fn create_contacts(&self, vcards: &[&str], opflags: u32) -> zbus::Result<Vec<String>>;
    fn modify_contacts(&self, vcards: &[&str], opflags: u32) -> zbus::Result<()>;
    fn remove_contacts(&self, uids: &[&str], opflags: u32) -> zbus::Result<()>;
    fn get_cursor(
        &self,
        query: &str,
        sort_keys: &[&str],
        sort_types: &[&str],
    ) -> zbus::Result<OwnedObjectPath>;

    #[zbus(property)]
    fn revision(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn writable(&self) -> zbus::Result<bool>;
}

/// A cursor over an opened address book (`GetCursor`).
#[zbus::proxy(
    interface = "org.gnome.evolution.dataserver.AddressBookCursor",
    gen_blocking = false
)]
pub trait AddressBookCursor {
    /// flags: 1 = MOVE, 2 = FETCH; origin: 0 = CURRENT, 1 = BEGIN, 2 = END.
    /// Returns `(n_results, vcards, new_total, new_position)`.
    fn step(
        &self,
        revision_guard: &str,
        flags: i32,
        origin: i32,
        count: i32,
    ) -> zbus::Result<(i32, Vec<String>, u32, u32)>;
    fn dispose(&self) -> zbus::Result<()>;

    /// How many contacts the cursor's query matches now.
    #[zbus(property)]
    fn total(&self) -> zbus::Result<u32>;
}

/// `…CalendarFactory` on `org.gnome.evolution.dataserver.Calendar<N>` (calendars, task
/// lists and memo lists).
#[zbus::proxy(
    interface = "org.gnome.evolution.dataserver.CalendarFactory",
    default_path = "/org/gnome/evolution/dataserver/CalendarFactory",
    gen_blocking = false
)]
pub trait CalendarFactory {
    /// Each returns `(object_path, bus_name)` (both typed `s`).
    fn open_calendar(&self, source_uid: &str) -> zbus::Result<(String, String)>;
    fn open_task_list(&self, source_uid: &str) -> zbus::Result<(String, String)>;
    fn open_memo_list(&self, source_uid: &str) -> zbus::Result<(String, String)>;
}

/// An opened calendar, task list or memo list (one interface for the three).
#[zbus::proxy(
    interface = "org.gnome.evolution.dataserver.Calendar",
    gen_blocking = false
)]
pub trait Calendar {
    /// Must be called after `Open<Kind>`; returns name/value pairs.
    fn open(&self) -> zbus::Result<Vec<String>>;
    fn close(&self) -> zbus::Result<()>;
    /// `#t` selects everything (`""` quietly selects nothing).
    fn get_object_list(&self, query: &str) -> zbus::Result<Vec<String>>;
    fn get_object(&self, uid: &str, rid: &str) -> zbus::Result<String>;
    /// Bare components of the backend's kind; returns the UIDs.
    fn create_objects(&self, ics_objects: &[&str], opflags: u32) -> zbus::Result<Vec<String>>;
    /// `mod_type`: `this`, `this-and-prior`, `this-and-future`, `all`, `only-this`.
    fn modify_objects(
        &self,
        ics_objects: &[&str],
        mod_type: &str,
        opflags: u32,
    ) -> zbus::Result<()>;
    /// `(uid, rid)` pairs; rid `""` = the whole object.
    fn remove_objects(
        &self,
        uid_rid_array: &[(&str, &str)],
        mod_type: &str,
        opflags: u32,
    ) -> zbus::Result<()>;
    fn get_timezone(&self, tzid: &str) -> zbus::Result<String>;
    fn add_timezone(&self, vtimezone: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn revision(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn writable(&self) -> zbus::Result<bool>;
}
