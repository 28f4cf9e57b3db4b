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
//! EDS's bus names are versioned (`AddressBook10`, `Sources5`, `Calendar8` in 3.46); the
//! highest version present on or activatable from the bus is used
//! ([`registry::discover_services`]).

mod addressbook;
mod errors;
pub mod proxies;
pub mod registry;
#[cfg(test)]
pub(crate) mod testbus;
#[cfg(test)]
mod tests;

use zbus::Connection;

pub use addressbook::AddressBook;
pub use registry::{EdsServices, EdsSourceInfo};

use crate::sources::SourceError;

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
        let sources_name = self.services.sources.as_deref().unwrap_or_default();
        let sources = registry::all_sources(&self.conn, sources_name)
            .await
            .map_err(|e| errors::map_error("eds", sources_name, "listing the EDS sources", e))?;
        Ok(registry::address_books_from(&sources))
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
