//! evolution-data-server (EDS) as a source, spoken to over raw D-Bus (zbus).
//!
//! ```no_run
//! # async fn demo(conn: zbus::Connection) -> Result<(), imsync::sources::SourceError> {
//! use imsync::sources::{eds::Eds, Source};
//! let eds = Eds::new(conn).await?;            // a connection dedicated to one job
//! for info in eds.address_books().await? {    // enabled books, system book first
//!     let mut book = eds.open_address_book(&info).await?;
//!     let rev = book.revision().await?;
//!     let items = book.list().await?;
//! #   let _ = (rev, items);
//! }
//! # Ok(()) }
//! ```
//!
//! Calendars, task lists and memo lists work the same way ([`Eds::sources`] with an
//! [`EdsSourceKind`], [`Eds::open_calendar_source`]): each yields
//! [`crate::item::Item::Calendar`] items, one per UID (master + detached instances +
//! referenced time zones).
//!
//! EDS's bus names are versioned (`AddressBook10`, `Sources5`, `Calendar8` in 3.46); the
//! highest version present on or activatable from the bus is used
//! ([`registry::discover_services`]).

mod addressbook;
mod backend;
mod calendar;
mod errors;
pub mod proxies;
pub mod registry;
#[cfg(test)]
pub(crate) mod testbus;
#[cfg(test)]
mod cal_tests;
#[cfg(test)]
mod tests;

use zbus::Connection;

pub use addressbook::AddressBook;
pub use calendar::CalendarSource;
pub use registry::{EdsServices, EdsSourceInfo, EdsSourceKind};

use crate::sources::{Source, SourceError};

/// Entry point to EDS on one connection.
#[derive(Debug, Clone)]
pub struct Eds {
    conn: Connection,
    services: EdsServices,
}

impl Eds {
    /// Finds EDS on the bus of `conn` and checks that its source registry answers
    /// (activating it if needed). Opened books live as long as `conn` stays on the bus,
    /// so pass a connection that is kept for the whole job.
    ///
    /// Fails with [`SourceError::Unavailable`] if the registry cannot be reached.
    pub async fn new(conn: Connection) -> Result<Eds, SourceError> {
        let services =
            registry::discover_services(&conn)
                .await
                .map_err(|e| SourceError::Unavailable {
                    service: "evolution-data-server".into(),
                    detail: format!("cannot list the bus names: {e}"),
                })?;
        let Some(sources) = services.sources.clone() else {
            return Err(SourceError::Unavailable {
                service: format!("{}Sources", registry::DS),
                detail: "evolution-data-server's source registry is neither running nor activatable on this bus"
                    .into(),
            });
        };
        registry::all_sources(&conn, &sources)
            .await
            .map_err(|e| SourceError::Unavailable {
                service: sources.clone(),
                detail: format!("the source registry does not answer: {e}"),
            })?;
        Ok(Eds { conn, services })
    }

    /// The EDS service names in use.
    pub fn services(&self) -> &EdsServices {
        &self.services
    }

    /// Every enabled address-book source (a source counts as disabled when it or any
    /// ancestor on its `Parent` chain is), the system address book first, then by
    /// display name.
    pub async fn address_books(&self) -> Result<Vec<EdsSourceInfo>, SourceError> {
        self.sources(EdsSourceKind::AddressBook).await
    }

    /// Every enabled calendar (events), like [`Eds::address_books`]; generated read-only
    /// calendars (birthdays, weather) are left out.
    pub async fn calendars(&self) -> Result<Vec<EdsSourceInfo>, SourceError> {
        self.sources(EdsSourceKind::Calendar).await
    }

    /// Every enabled task list.
    pub async fn task_lists(&self) -> Result<Vec<EdsSourceInfo>, SourceError> {
        self.sources(EdsSourceKind::TaskList).await
    }

    /// Every enabled memo list.
    pub async fn memo_lists(&self) -> Result<Vec<EdsSourceInfo>, SourceError> {
        self.sources(EdsSourceKind::MemoList).await
    }

    /// Every enabled source of `kind` holding user data (not generated from elsewhere),
    /// the system source first, then by display name.
    pub async fn sources(&self, kind: EdsSourceKind) -> Result<Vec<EdsSourceInfo>, SourceError> {
        let sources_name = self.services.sources.as_deref().unwrap_or_default();
        let sources = registry::all_sources(&self.conn, sources_name)
            .await
            .map_err(|e| errors::map_error("eds", sources_name, "listing the EDS sources", e))?;
        Ok(registry::sources_from(&sources, kind))
    }

    /// Opens a calendar, task list or memo list (`OpenCalendar` / `OpenTaskList` /
    /// `OpenMemoList` by `info.kind`, then `Open`).
    pub async fn open_calendar_source(
        &self,
        info: &EdsSourceInfo,
    ) -> Result<CalendarSource, SourceError> {
        let Some(factory) = self.services.calendar.clone() else {
            return Err(SourceError::Unavailable {
                service: format!("{}Calendar", registry::DS),
                detail: "evolution-data-server's calendar factory is neither running nor activatable on this bus".into(),
            });
        };
        CalendarSource::open(self.conn.clone(), factory, info.clone()).await
    }

    /// Opens any source as a [`Source`].
    pub async fn open_source(&self, info: &EdsSourceInfo) -> Result<Box<dyn Source>, SourceError> {
        Ok(match info.kind {
            EdsSourceKind::AddressBook => Box::new(self.open_address_book(info).await?),
            _ => Box::new(self.open_calendar_source(info).await?),
        })
    }

    /// Opens an address book (`OpenAddressBook` + `Open`).
    pub async fn open_address_book(
        &self,
        info: &EdsSourceInfo,
    ) -> Result<AddressBook, SourceError> {
        let Some(factory) = self.services.address_book.clone() else {
            return Err(SourceError::Unavailable {
                service: format!("{}AddressBook", registry::DS),
                detail: "evolution-data-server's address-book factory is neither running nor activatable on this bus"
                    .into(),
            });
        };
        AddressBook::open(self.conn.clone(), factory, info.clone()).await
    }
}
