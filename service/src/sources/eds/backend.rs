//! An opened EDS backend (address book, calendar, task list or memo list) that survives
//! factory restarts: every call checks that the bus name it was opened on still has the
//! same owner, and a call that fails because the object is gone (stale path, no reply,
//! backend closed) reopens the backend once and is retried.

use std::future::Future;
use std::pin::Pin;

use zbus::fdo::DBusProxy;
use zbus::names::BusName;
use zbus::Connection;

use super::errors::{is_object_gone, map_error};
use crate::sources::SourceError;

/// What an opener returns: the bus name the factory returned and a proxy on it, after
/// `Open()` succeeded.
pub(crate) type OpenFuture<P> = Pin<Box<dyn Future<Output = zbus::Result<(String, P)>> + Send>>;
/// Opens `source_uid` on the factory `factory` over `conn`: `Open<Kind>` + `Open()`.
pub(crate) type OpenFn<P> =
    fn(conn: Connection, factory: String, source_uid: String) -> OpenFuture<P>;

#[derive(Clone)]
struct Opened<P> {
    /// The bus name `Open<Kind>` returned (calls go there).
    bus_name: String,
    /// The unique name that owned `bus_name` when the backend was opened.
    owner: String,
    proxy: P,
}

/// An opened backend with its proxy of type `P`.
pub(crate) struct Backend<P> {
    conn: Connection,
    factory: String,
    source_uid: String,
    /// The store id used in errors and logs (`eds:<uid>`).
    id: String,
    /// For messages: `address book`, `calendar`, …
    noun: &'static str,
    open_fn: OpenFn<P>,
    opened: Opened<P>,
}

impl<P> std::fmt::Debug for Backend<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("factory", &self.factory)
            .field("bus_name", &self.opened.bus_name)
            .field("owner", &self.opened.owner)
            .finish()
    }
}

async fn open_with<P>(
    conn: &Connection,
    factory: &str,
    uid: &str,
    open_fn: OpenFn<P>,
) -> zbus::Result<Opened<P>> {
    let (bus_name, proxy) = open_fn(conn.clone(), factory.to_string(), uid.to_string()).await?;
    let owner = DBusProxy::new(conn)
        .await?
        .get_name_owner(BusName::try_from(bus_name.as_str())?)
        .await?
        .to_string();
    Ok(Opened {
        bus_name,
        owner,
        proxy,
    })
}

impl<P: Clone + Send + Sync + 'static> Backend<P> {
    pub(crate) async fn open(
        conn: Connection,
        factory: String,
        source_uid: String,
        noun: &'static str,
        open_fn: OpenFn<P>,
    ) -> Result<Backend<P>, SourceError> {
        let id = format!("eds:{source_uid}");
        let opened = open_with(&conn, &factory, &source_uid, open_fn)
            .await
            .map_err(|e| map_error(&id, &factory, &format!("opening the {noun}"), e))?;
        Ok(Backend {
            conn,
            factory,
            source_uid,
            id,
            noun,
            open_fn,
            opened,
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The proxy of the opened backend (changes after a reopen).
    pub(crate) fn proxy(&self) -> &P {
        &self.opened.proxy
    }

    async fn reopen(&mut self, why: &str) -> Result<(), SourceError> {
        tracing::info!(store = %self.id, "reopening the {} ({why})", self.noun);
        self.opened = open_with(&self.conn, &self.factory, &self.source_uid, self.open_fn)
            .await
            .map_err(|e| {
                map_error(
                    &self.id,
                    &self.factory,
                    &format!("reopening the {}", self.noun),
                    e,
                )
            })?;
        Ok(())
    }

    /// Whether the bus name of the opened backend is still owned by the process that
    /// opened it.
    async fn owner_unchanged(&self) -> bool {
        let Ok(dbus) = DBusProxy::new(&self.conn).await else {
            return true;
        };
        let Ok(name) = BusName::try_from(self.opened.bus_name.as_str()) else {
            return true;
        };
        match dbus.get_name_owner(name).await {
            Ok(owner) => owner.as_str() == self.opened.owner,
            Err(_) => false, // NameHasNoOwner: the factory is gone
        }
    }

    /// Runs `op` on the backend; reopens once and retries if the backend is gone (owner
    /// of the bus name changed, stale object, no reply, …). Errors are mapped to
    /// [`SourceError`] with `what` describing the call.
    pub(crate) async fn call<T, F, Fut>(&mut self, what: &str, op: F) -> Result<T, SourceError>
    where
        F: Fn(P) -> Fut,
        Fut: Future<Output = zbus::Result<T>>,
    {
        let mut reopened = false;
        if !self.owner_unchanged().await {
            self.reopen("the factory was restarted").await?;
            reopened = true;
        }
        match op(self.opened.proxy.clone()).await {
            Ok(v) => Ok(v),
            Err(e) if !reopened && is_object_gone(&e) => {
                tracing::debug!(store = %self.id, "{what}: {e}");
                self.reopen(&e.to_string()).await?;
                op(self.opened.proxy.clone())
                    .await
                    .map_err(|e| map_error(&self.id, &self.factory, what, e))
            }
            Err(e) => Err(map_error(&self.id, &self.factory, what, e)),
        }
    }
}

/// Per-op outcome of a write: `Err` of a whole-store problem (the store is unreachable)
/// versus a failed op (the store rejected it).
pub(crate) fn op_error(e: SourceError) -> Result<String, SourceError> {
    match e {
        SourceError::Store { detail, .. } => Ok(detail),
        other => Err(other),
    }
}
