//! The one SQLite database of imsync (`$XDG_DATA_HOME/imsync/state.db`): accounts and their
//! sync settings, per account and class the sync state (anchors, tracked items, id maps), and
//! the job history. Secrets are never stored here.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::migrations::MIGRATIONS;
use super::roster::{self, RosterEntry};
use super::settings::{Account, ClassSettings};
use super::ProfileError;
use crate::class::DataClass;

pub struct Store {
    conn: Connection,
}

/// The DevInf exchanged with an account's server (see [`Store::devinf_cache`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevInfCache {
    pub server_url: String,
    /// The server's DevInf as XML (`syncml::codec::xml::encode_devinf`).
    pub theirs: Option<Vec<u8>>,
    /// When `theirs` was received (Unix seconds).
    pub theirs_at: i64,
    /// Digest of the DevInf the server last took from us.
    pub ours_digest: Option<Vec<u8>>,
}

/// What the last successful session of a class left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassState {
    pub server_url: String,
    pub remote_uri: String,
    pub last_anchor: Option<String>,
    pub source_revisions: BTreeMap<String, String>,
    pub needs_slow_sync: bool,
    pub server_other_items: u32,
    pub last_success: Option<i64>,
}

impl ClassState {
    /// Whether this state can carry on a session with `server_url` / `remote_uri`: anchors are
    /// only valid for the server and database they were made with.
    pub fn is_for(&self, server_url: &str, remote_uri: &str) -> bool {
        self.server_url == server_url && self.remote_uri == remote_uri && self.last_anchor.is_some()
    }
}

/// An item the server has from us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedItem {
    pub luid: u64,
    pub source_id: String,
    pub local_id: String,
    /// Hash of what was sent; empty while the server has not confirmed it.
    pub hash: Vec<u8>,
    /// Digest of the item as the phone's store gave it (see [`crate::sources::SourceItem::digest`]);
    /// empty when unknown.
    pub source_digest: Vec<u8>,
}

/// A tracked item as a session commits it: compact, as a first backup commits every item
/// of the phone at once (ids shared with the change plan, hashes inline).
#[derive(Debug, Clone, Default)]
pub struct CommitItem {
    pub luid: u64,
    pub source_id: std::sync::Arc<str>,
    pub local_id: std::sync::Arc<str>,
    /// Hash of what was sent; `None` while the server has not confirmed it.
    pub hash: Option<[u8; 16]>,
    /// Digest of the item as the phone's store gave it, if known.
    pub source_digest: Option<[u8; 16]>,
}

/// Everything a successful session changes, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct SessionCommit {
    pub server_url: String,
    pub remote_uri: String,
    pub next_anchor: String,
    pub source_revisions: BTreeMap<String, String>,
    /// Drop every tracked item and id map of the class first (new server or database, slow sync).
    pub reset_items: bool,
    pub upserts: Vec<CommitItem>,
    pub removals: Vec<u64>,
    pub next_luid: u64,
    pub server_other_items: u32,
    pub id_maps: Vec<(String, String)>,
    /// Source digests learnt for tracked items that did not change (LUID, digest).
    pub source_digests: Vec<(u64, Vec<u8>)>,
}

/// One finished (or running) job, as kept in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: u64,
    pub account: String,
    pub kind: String,
    pub state: String,
    pub error: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub report: serde_json::Value,
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    /// Open (or create) the database at `path`: the directory is made private to the user
    /// (0700), the file 0600; WAL journal; migrations applied.
    pub fn open(path: &Path) -> Result<Store, ProfileError> {
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                    ProfileError::Io(format!("cannot create state directory {}: {e}", dir.display()))
                })?;
            }
        }
        let conn = Connection::open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ProfileError::Io(format!("cannot restrict {}: {e}", path.display())))?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Store, ProfileError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, ProfileError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A page cache of 512 KiB instead of 2 MiB: committing a first backup of 10 000
        // contacts filled the default one (dirty pages now spill to the WAL during the
        // transaction); lookups are by primary key and need little cache.
        conn.pragma_update(None, "cache_size", -512)?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version this build writes.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    fn migrate(&mut self) -> Result<(), ProfileError> {
        let version: u32 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > Self::SCHEMA_VERSION {
            return Err(ProfileError::Schema(format!(
                "the state database has schema version {version}, newer than this imsync ({}); refusing to touch it",
                Self::SCHEMA_VERSION
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
            tracing::info!(version = i + 1, "state database migrated");
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<u32, ProfileError> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The device ID of this installation (SyncHdr Source), made once and kept.
    pub fn device_id(&self) -> Result<String, ProfileError> {
        let existing: Option<String> = self
            .conn
            .query_row("SELECT value FROM installation WHERE key = 'device_id'", [], |r| r.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| ProfileError::Io(format!("no randomness: {e}")))?;
        let id = format!("imsync-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        self.conn.execute("INSERT INTO installation (key, value) VALUES ('device_id', ?1)", [&id])?;
        Ok(id)
    }

    /// The row id of the account `name` (its D-Bus object is `/org/imsync/Sync1/Account/<id>`).
    pub fn account_id(&self, name: &str) -> Result<Option<i64>, ProfileError> {
        Ok(self.conn.query_row("SELECT id FROM accounts WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }

    fn require_account_id(&self, name: &str) -> Result<i64, ProfileError> {
        self.account_id(name)?.ok_or_else(|| ProfileError::NoSuchAccount(name.to_string()))
    }

    pub fn accounts(&self) -> Result<Vec<Account>, ProfileError> {
        Ok(self.accounts_with_ids()?.into_iter().map(|(_, a)| a).collect())
    }

    /// Every account with its row id, oldest first.
    pub fn accounts_with_ids(&self) -> Result<Vec<(i64, Account)>, ProfileError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, protocol, im_id, display_name, server_url, username, is_default, server_cert_sha256 FROM accounts ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let mut a = Account::new(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?);
                a.display_name = r.get(3)?;
                a.server_url = r.get(4)?;
                a.username = r.get(5)?;
                a.is_default = r.get(6)?;
                a.server_cert_sha256 = r.get(7)?;
                Ok((r.get::<_, i64>(0)?, a))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, mut a) in rows {
            let mut stmt =
                self.conn.prepare("SELECT class, remote_uri, mode, enabled FROM class_settings WHERE account_id = ?1")?;
            let classes = stmt
                .query_map([id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (class, uri, mode, enabled) in classes {
                // Rows written by a newer or broken version are skipped, not fatal.
                let (Ok(class), Ok(mode)) = (class.parse::<DataClass>(), mode.parse()) else {
                    tracing::warn!(%class, %mode, "ignoring unreadable class settings");
                    continue;
                };
                a.classes.insert(class, ClassSettings { remote_uri: uri, mode, enabled });
            }
            out.push((id, a));
        }
        Ok(out)
    }

    /// The account with row id `id`.
    pub fn account_by_id(&self, id: i64) -> Result<Option<Account>, ProfileError> {
        Ok(self.accounts_with_ids()?.into_iter().find(|(i, _)| *i == id).map(|(_, a)| a))
    }

    pub fn account(&self, name: &str) -> Result<Option<Account>, ProfileError> {
        Ok(self.accounts()?.into_iter().find(|a| a.name() == name))
    }

    /// The default account: the one marked so, else the oldest.
    pub fn default_account(&self) -> Result<Option<Account>, ProfileError> {
        let accounts = self.accounts()?;
        let default = accounts.iter().position(|a| a.is_default).unwrap_or(0);
        Ok(accounts.into_iter().nth(default))
    }

    /// Create or update an account (identity, settings; never the password). The first
    /// account of the installation becomes the default. Returns the account's row id.
    pub fn save_account(&mut self, a: &Account) -> Result<i64, ProfileError> {
        let tx = self.conn.transaction()?;
        let t = now();
        let count: i64 = tx.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?;
        let old_display_name: Option<String> = tx
            .query_row("SELECT display_name FROM accounts WHERE name = ?1", [a.name()], |r| r.get(0))
            .optional()?;
        tx.execute(
            "INSERT INTO accounts (name, protocol, im_id, display_name, server_url, username, is_default, created_at, updated_at,
                 server_cert_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
             ON CONFLICT(name) DO UPDATE SET display_name = excluded.display_name, server_url = excluded.server_url,
                 username = excluded.username, updated_at = excluded.updated_at,
                 server_cert_sha256 = excluded.server_cert_sha256",
            params![
                a.name(),
                a.protocol,
                a.im_id,
                a.display_name,
                a.server_url,
                a.username,
                a.is_default || count == 0,
                t,
                a.server_cert_sha256
            ],
        )?;
        let id: i64 = tx.query_row("SELECT id FROM accounts WHERE name = ?1", [a.name()], |r| r.get(0))?;
        if old_display_name.is_some_and(|old| old != a.display_name) {
            // the display name is backed up with the roster
            tx.execute("UPDATE accounts SET roster_revision = roster_revision + 1 WHERE id = ?1", [id])?;
        }
        for (class, cs) in &a.classes {
            tx.execute(
                "INSERT INTO class_settings (account_id, class, remote_uri, mode, enabled) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(account_id, class) DO UPDATE SET remote_uri = excluded.remote_uri, mode = excluded.mode,
                     enabled = excluded.enabled",
                params![id, class.as_str(), cs.remote_uri, cs.mode.as_str(), cs.enabled],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Make `name` the default account (and no other).
    pub fn set_default(&mut self, name: &str) -> Result<(), ProfileError> {
        let id = self.require_account_id(name)?;
        self.conn.execute("UPDATE accounts SET is_default = (id = ?1)", [id])?;
        Ok(())
    }

    /// Forget the account `name` with its settings, sync state, tracked items and roster (the
    /// job history keeps its entries). If it was the default, the oldest remaining account
    /// becomes the default. Returns whether it existed.
    pub fn remove_account(&mut self, name: &str) -> Result<bool, ProfileError> {
        let tx = self.conn.transaction()?;
        let was_default: Option<bool> =
            tx.query_row("SELECT is_default FROM accounts WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        let Some(was_default) = was_default else { return Ok(false) };
        tx.execute("DELETE FROM accounts WHERE name = ?1", [name])?;
        if was_default {
            tx.execute("UPDATE accounts SET is_default = 1 WHERE id = (SELECT min(id) FROM accounts)", [])?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The account's roster, ordered by IM id.
    pub fn roster(&self, account: &str) -> Result<Vec<RosterEntry>, ProfileError> {
        let id = self.require_account_id(account)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT im_id, name, groups, subscription FROM roster WHERE account_id = ?1 ORDER BY im_id")?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(im_id, name, groups, sub)| RosterEntry {
                im_id,
                name,
                groups: roster::normalise_groups(serde_json::from_str::<Vec<String>>(&groups).unwrap_or_default()),
                subscription: sub.parse().unwrap_or_default(),
            })
            .collect())
    }

    /// The roster's revision: a counter bumped on every change of the roster or of the
    /// account's display name.
    pub fn roster_revision(&self, account: &str) -> Result<u64, ProfileError> {
        let rev: i64 =
            self.conn.query_row("SELECT roster_revision FROM accounts WHERE name = ?1", [account], |r| r.get(0)).optional()?.ok_or_else(
                || ProfileError::NoSuchAccount(account.to_string()),
            )?;
        Ok(rev as u64)
    }

    /// Replace the whole roster with `entries` (unique IM ids). Returns how many entries were
    /// added, changed and removed; the revision moves only if something changed.
    pub fn set_roster(&mut self, account: &str, entries: &[RosterEntry]) -> Result<(usize, usize, usize), ProfileError> {
        let old: std::collections::HashMap<String, RosterEntry> =
            self.roster(account)?.into_iter().map(|e| (e.im_id.clone(), e)).collect();
        let new_ids: std::collections::HashSet<&str> = entries.iter().map(|e| e.im_id.as_str()).collect();
        let upserts: Vec<RosterEntry> = entries.iter().filter(|e| old.get(&e.im_id) != Some(*e)).cloned().collect();
        let added = upserts.iter().filter(|e| !old.contains_key(&e.im_id)).count();
        let removals: Vec<String> = old.keys().filter(|k| !new_ids.contains(k.as_str())).cloned().collect();
        let counts = (added, upserts.len() - added, removals.len());
        self.change_roster(account, &upserts, &removals)?;
        Ok(counts)
    }

    /// Add or replace `upserts` and remove the entries `removals` (IM ids), in one
    /// transaction; bumps the revision if anything is given.
    pub fn change_roster(&mut self, account: &str, upserts: &[RosterEntry], removals: &[String]) -> Result<(), ProfileError> {
        if upserts.is_empty() && removals.is_empty() {
            return Ok(());
        }
        let id = self.require_account_id(account)?;
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO roster (account_id, im_id, name, groups, subscription) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(account_id, im_id) DO UPDATE SET name = excluded.name, groups = excluded.groups,
                     subscription = excluded.subscription",
            )?;
            for e in upserts {
                let groups = serde_json::to_string(&e.groups).map_err(|e| ProfileError::Schema(e.to_string()))?;
                up.execute(params![id, e.im_id, e.name, groups, e.subscription.as_str()])?;
            }
            let mut del = tx.prepare_cached("DELETE FROM roster WHERE account_id = ?1 AND im_id = ?2")?;
            for r in removals {
                del.execute(params![id, r])?;
            }
        }
        tx.execute("UPDATE accounts SET roster_revision = roster_revision + 1 WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    pub fn server_nonce(&self, account: &str) -> Result<Option<String>, ProfileError> {
        Ok(self
            .conn
            .query_row("SELECT server_nonce FROM accounts WHERE name = ?1", [account], |r| r.get(0))
            .optional()?
            .flatten())
    }

    pub fn set_server_nonce(&self, account: &str, nonce: Option<&str>) -> Result<(), ProfileError> {
        self.conn.execute("UPDATE accounts SET server_nonce = ?2 WHERE name = ?1", params![account, nonce])?;
        Ok(())
    }

    pub fn server_encoding(&self, account: &str) -> Result<Option<String>, ProfileError> {
        Ok(self
            .conn
            .query_row("SELECT server_encoding FROM accounts WHERE name = ?1", [account], |r| r.get(0))
            .optional()?
            .flatten())
    }

    pub fn set_server_encoding(&self, account: &str, encoding: &str) -> Result<(), ProfileError> {
        self.conn.execute("UPDATE accounts SET server_encoding = ?2 WHERE name = ?1", params![account, encoding])?;
        Ok(())
    }

    /// What is known of the DevInf exchanged with `account`'s server (see migration 6).
    pub fn devinf_cache(&self, account: &str) -> Result<Option<DevInfCache>, ProfileError> {
        let id = self.require_account_id(account)?;
        Ok(self
            .conn
            .query_row(
                "SELECT server_url, theirs, theirs_at, ours_digest FROM server_devinf WHERE account_id = ?1",
                [id],
                |r| Ok(DevInfCache { server_url: r.get(0)?, theirs: r.get(1)?, theirs_at: r.get(2)?, ours_digest: r.get(3)? }),
            )
            .optional()?)
    }

    /// Record, after a session with `server_url` that ended well, the server's DevInf if it
    /// sent one (`None` keeps what is known) and the digest of the DevInf we sent, if we did
    /// (`None` keeps what is known). Another server URL than the recorded one starts afresh.
    pub fn remember_devinf(
        &self,
        account: &str,
        server_url: &str,
        theirs: Option<&[u8]>,
        ours_digest: Option<&[u8]>,
    ) -> Result<(), ProfileError> {
        let id = self.require_account_id(account)?;
        self.conn.execute(
            "INSERT INTO server_devinf (account_id, server_url, theirs, theirs_at, ours_digest)
             VALUES (?1, ?2, ?3, CASE WHEN ?3 IS NULL THEN 0 ELSE ?5 END, ?4)
             ON CONFLICT(account_id) DO UPDATE SET
                 theirs = CASE WHEN server_url != excluded.server_url OR excluded.theirs IS NOT NULL
                          THEN excluded.theirs ELSE theirs END,
                 theirs_at = CASE WHEN server_url != excluded.server_url OR excluded.theirs IS NOT NULL
                             THEN excluded.theirs_at ELSE theirs_at END,
                 ours_digest = CASE WHEN server_url != excluded.server_url OR excluded.ours_digest IS NOT NULL
                               THEN excluded.ours_digest ELSE ours_digest END,
                 server_url = excluded.server_url",
            params![id, server_url, theirs, ours_digest, now()],
        )?;
        Ok(())
    }

    /// Forget the DevInf exchange with `account`'s server: the next session sends ours and
    /// asks for theirs.
    pub fn forget_devinf(&self, account: &str) -> Result<(), ProfileError> {
        let id = self.require_account_id(account)?;
        self.conn.execute("DELETE FROM server_devinf WHERE account_id = ?1", [id])?;
        Ok(())
    }

    pub fn class_state(&self, account: &str, class: DataClass) -> Result<Option<ClassState>, ProfileError> {
        let id = self.require_account_id(account)?;
        let row = self
            .conn
            .query_row(
                "SELECT server_url, remote_uri, last_anchor, source_revisions, needs_slow_sync, server_other_items, last_success
                 FROM sync_state WHERE account_id = ?1 AND class = ?2",
                params![id, class.as_str()],
                |r| {
                    Ok(ClassState {
                        server_url: r.get(0)?,
                        remote_uri: r.get(1)?,
                        last_anchor: r.get(2)?,
                        source_revisions: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                        needs_slow_sync: r.get(4)?,
                        server_other_items: r.get(5)?,
                        last_success: r.get(6)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    pub fn tracked_items(&self, account: &str, class: DataClass) -> Result<Vec<TrackedItem>, ProfileError> {
        let id = self.require_account_id(account)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT luid, source_id, local_id, hash, source_digest FROM items WHERE account_id = ?1 AND class = ?2 ORDER BY luid",
        )?;
        let items = stmt
            .query_map(params![id, class.as_str()], |r| {
                Ok(TrackedItem {
                    luid: r.get::<_, i64>(0)? as u64,
                    source_id: r.get(1)?,
                    local_id: r.get(2)?,
                    hash: r.get(3)?,
                    source_digest: r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(items)
    }

    pub fn next_luid(&self, account: &str, class: DataClass) -> Result<u64, ProfileError> {
        let id = self.require_account_id(account)?;
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT next_luid FROM luid_counters WHERE account_id = ?1 AND class = ?2",
                params![id, class.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.unwrap_or(1) as u64)
    }

    /// Record that a session of this class is about to send changes: until a session ends
    /// well, the next one must be a slow sync (the server may hold part of what was sent).
    /// This is not an anchor: anchors only move in [`Store::commit_session`].
    pub fn mark_needs_slow_sync(&self, account: &str, class: DataClass) -> Result<(), ProfileError> {
        let id = self.require_account_id(account)?;
        let changed = self.conn.execute(
            "UPDATE sync_state SET needs_slow_sync = 1 WHERE account_id = ?1 AND class = ?2",
            params![id, class.as_str()],
        )?;
        if changed == 0 {
            // No earlier success: the next session is a slow sync anyway (no anchor).
            tracing::debug!(%account, %class, "no sync state yet; next session is slow anyway");
        }
        Ok(())
    }

    /// Record items about to be added on the server (as tracked with an empty hash, so the next
    /// backup re-sends them as Replace, or Delete if they are gone) and reserve their LUIDs.
    /// Anchors and revisions are not touched.
    pub fn record_in_flight(
        &mut self,
        account: &str,
        class: DataClass,
        items: &[TrackedItem],
        next_luid: u64,
    ) -> Result<(), ProfileError> {
        let id = self.require_account_id(account)?;
        let tx = self.conn.transaction()?;
        let cls = class.as_str();
        {
            let mut up = tx.prepare_cached(
                "INSERT OR IGNORE INTO items (account_id, class, luid, source_id, local_id, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for it in items {
                up.execute(params![id, cls, it.luid as i64, it.source_id, it.local_id, it.hash])?;
            }
        }
        tx.execute(
            "INSERT INTO luid_counters (account_id, class, next_luid) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, class) DO UPDATE SET next_luid = max(next_luid, excluded.next_luid)",
            params![id, cls, next_luid as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Write everything a successful session changed, in one transaction.
    pub fn commit_session(&mut self, account: &str, class: DataClass, c: &SessionCommit) -> Result<(), ProfileError> {
        let id = self.require_account_id(account)?;
        let tx = self.conn.transaction()?;
        let cls = class.as_str();
        if c.reset_items {
            tx.execute("DELETE FROM items WHERE account_id = ?1 AND class = ?2", params![id, cls])?;
            tx.execute("DELETE FROM id_map WHERE account_id = ?1 AND class = ?2", params![id, cls])?;
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM items WHERE account_id = ?1 AND class = ?2 AND luid = ?3")?;
            for luid in &c.removals {
                del.execute(params![id, cls, *luid as i64])?;
            }
            let mut digest = tx.prepare_cached(
                "UPDATE items SET source_digest = ?4 WHERE account_id = ?1 AND class = ?2 AND luid = ?3",
            )?;
            for (luid, d) in &c.source_digests {
                digest.execute(params![id, cls, *luid as i64, d])?;
            }
            let mut up = tx.prepare_cached(
                "INSERT INTO items (account_id, class, luid, source_id, local_id, hash, source_digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(account_id, class, luid) DO UPDATE SET source_id = excluded.source_id,
                     local_id = excluded.local_id, hash = excluded.hash, source_digest = excluded.source_digest",
            )?;
            for it in &c.upserts {
                let hash = it.hash.as_ref().map_or(&[][..], |h| &h[..]);
                let digest = it.source_digest.as_ref().map(|d| &d[..]);
                up.execute(params![id, cls, it.luid as i64, &*it.source_id, &*it.local_id, hash, digest])?;
            }
            let mut map = tx.prepare_cached(
                "INSERT OR REPLACE INTO id_map (account_id, class, luid, server_id) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (luid, server_id) in &c.id_maps {
                map.execute(params![id, cls, luid, server_id])?;
            }
        }
        tx.execute(
            "INSERT INTO luid_counters (account_id, class, next_luid) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, class) DO UPDATE SET next_luid = max(next_luid, excluded.next_luid)",
            params![id, cls, c.next_luid as i64],
        )?;
        write_state(&tx, id, cls, c)?;
        tx.commit()?;
        Ok(())
    }

    pub fn insert_job(&self, account: &str, kind: &str, started_at: i64) -> Result<u64, ProfileError> {
        self.conn.execute(
            "INSERT INTO jobs (account, kind, state, started_at) VALUES (?1, ?2, 'running', ?3)",
            params![account, kind, started_at],
        )?;
        Ok(self.conn.last_insert_rowid() as u64)
    }

    pub fn finish_job(&self, id: u64, state: &str, error: &str, report: &serde_json::Value) -> Result<(), ProfileError> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2, error = ?3, finished_at = ?4, report = ?5 WHERE id = ?1",
            params![id as i64, state, error, now(), report.to_string()],
        )?;
        Ok(())
    }

    /// Jobs that were running when the daemon stopped are marked so at start.
    pub fn fail_interrupted_jobs(&self) -> Result<usize, ProfileError> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'failed', error = 'org.imsync.Error.Interrupted: the service stopped during the job',
                 finished_at = ?1 WHERE state = 'running'",
            [now()],
        )?)
    }

    /// Jobs still running when the service stops on request are marked cancelled.
    pub fn cancel_running_jobs(&self) -> Result<usize, ProfileError> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'cancelled', error = 'org.imsync.Error.Cancelled: the service was stopped during the job',
                 finished_at = ?1 WHERE state = 'running'",
            [now()],
        )?)
    }

    /// The newest `max` jobs, newest first.
    pub fn history(&self, max: u32) -> Result<Vec<JobRecord>, ProfileError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, account, kind, state, error, started_at, finished_at, report FROM jobs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([max], |r| {
                Ok(JobRecord {
                    id: r.get::<_, i64>(0)? as u64,
                    account: r.get(1)?,
                    kind: r.get(2)?,
                    state: r.get(3)?,
                    error: r.get(4)?,
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    report: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or(serde_json::Value::Null),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The newest finished backup job.
    pub fn last_backup(&self) -> Result<Option<JobRecord>, ProfileError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM jobs WHERE kind = 'backup' AND state != 'running' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        Ok(self.history(u32::MAX)?.into_iter().find(|j| j.id == id as u64))
    }

    pub fn integrity_check(&self) -> Result<String, ProfileError> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

fn write_state(tx: &Transaction<'_>, id: i64, cls: &str, c: &SessionCommit) -> Result<(), ProfileError> {
    let revisions = serde_json::to_string(&c.source_revisions).unwrap_or_else(|_| "{}".into());
    tx.execute(
        "INSERT INTO sync_state (account_id, class, server_url, remote_uri, last_anchor, source_revisions,
             needs_slow_sync, server_other_items, last_success)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)
         ON CONFLICT(account_id, class) DO UPDATE SET server_url = excluded.server_url, remote_uri = excluded.remote_uri,
             last_anchor = excluded.last_anchor, source_revisions = excluded.source_revisions, needs_slow_sync = 0,
             server_other_items = excluded.server_other_items, last_success = excluded.last_success",
        params![id, cls, c.server_url, c.remote_uri, c.next_anchor, revisions, c.server_other_items, now()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devinf_cache_keeps_what_a_session_did_not_renew_and_forgets_another_server() {
        let (s, name) = store_with_account();
        assert_eq!(s.devinf_cache(&name).unwrap(), None);
        s.remember_devinf(&name, "https://a/sync", Some(b"<DevInf/>"), Some(b"d1")).unwrap();
        let c = s.devinf_cache(&name).unwrap().unwrap();
        assert_eq!((c.theirs.as_deref(), c.ours_digest.as_deref()), (Some(&b"<DevInf/>"[..]), Some(&b"d1"[..])));
        assert!(c.theirs_at > 0);
        // a session that sent ours again but got nothing new keeps theirs
        s.remember_devinf(&name, "https://a/sync", None, Some(b"d2")).unwrap();
        let c = s.devinf_cache(&name).unwrap().unwrap();
        assert_eq!((c.theirs.as_deref(), c.ours_digest.as_deref()), (Some(&b"<DevInf/>"[..]), Some(&b"d2"[..])));
        // another server: nothing of the old one is kept
        s.remember_devinf(&name, "https://b/sync", None, Some(b"d3")).unwrap();
        let c = s.devinf_cache(&name).unwrap().unwrap();
        assert_eq!((c.server_url.as_str(), c.theirs, c.theirs_at, c.ours_digest.as_deref()), ("https://b/sync", None, 0, Some(&b"d3"[..])));
        s.forget_devinf(&name).unwrap();
        assert_eq!(s.devinf_cache(&name).unwrap(), None);
    }

    fn store_with_account() -> (Store, String) {
        let mut s = Store::open_in_memory().unwrap();
        let mut a = Account::new("xmpp", "alice@example.org");
        a.server_url = "http://127.0.0.1:1/sync".into();
        s.save_account(&a).unwrap();
        (s, a.name())
    }

    #[test]
    fn roster_revision_moves_only_on_changes() {
        use crate::profile::roster::{RosterEntry, Subscription};
        let (mut s, name) = store_with_account();
        assert_eq!(s.roster_revision(&name).unwrap(), 0);
        let entries = vec![
            RosterEntry::new("bob@x", "Bob", &["Work"], Subscription::Both),
            RosterEntry::new("carol@x", "", &[], Subscription::To),
        ];
        assert_eq!(s.set_roster(&name, &entries).unwrap(), (2, 0, 0));
        assert_eq!(s.roster_revision(&name).unwrap(), 1);
        assert_eq!(s.roster(&name).unwrap(), entries);
        assert_eq!(s.set_roster(&name, &entries).unwrap(), (0, 0, 0));
        assert_eq!(s.roster_revision(&name).unwrap(), 1, "unchanged roster, same revision");
        let changed = vec![RosterEntry::new("bob@x", "Robert", &["Work"], Subscription::Both)];
        assert_eq!(s.set_roster(&name, &changed).unwrap(), (0, 1, 1));
        assert_eq!(s.roster_revision(&name).unwrap(), 2);
        // the display name travels with the roster
        let mut a = s.account(&name).unwrap().unwrap();
        a.display_name = "Alice".into();
        s.save_account(&a).unwrap();
        assert_eq!(s.roster_revision(&name).unwrap(), 3);
        s.save_account(&a).unwrap();
        assert_eq!(s.roster_revision(&name).unwrap(), 3);
    }

    #[test]
    fn default_moves_and_removal_forgets_everything() {
        let (mut s, name) = store_with_account();
        let b = Account::new("matrix", "@bob:example.org");
        let bid = s.save_account(&b).unwrap();
        s.set_roster(&b.name(), &[crate::profile::RosterEntry::new("x", "", &[], Default::default())]).unwrap();
        s.set_default(&b.name()).unwrap();
        assert_eq!(s.default_account().unwrap().unwrap().name(), b.name());
        assert!(!s.account(&name).unwrap().unwrap().is_default);
        assert_eq!(s.account_by_id(bid).unwrap().unwrap().name(), b.name());
        assert!(s.remove_account(&b.name()).unwrap());
        assert!(!s.remove_account(&b.name()).unwrap());
        let left = s.default_account().unwrap().unwrap();
        assert_eq!(left.name(), name);
        assert!(left.is_default, "the oldest remaining account becomes the default");
        let rows: i64 = s.conn.query_row("SELECT count(*) FROM roster", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn first_account_is_default_and_device_id_is_stable() {
        let (mut s, name) = store_with_account();
        let b = Account::new("matrix", "@bob:example.org");
        s.save_account(&b).unwrap();
        assert_eq!(s.default_account().unwrap().unwrap().name(), name);
        let id = s.device_id().unwrap();
        assert!(id.starts_with("imsync-") && id.len() == 23, "{id}");
        assert_eq!(s.device_id().unwrap(), id);
        assert_eq!(s.schema_version().unwrap(), Store::SCHEMA_VERSION);
    }

    #[test]
    fn commit_is_atomic_and_complete() {
        let (mut s, name) = store_with_account();
        let c = DataClass::Contacts;
        assert_eq!(s.class_state(&name, c).unwrap(), None);
        let commit = SessionCommit {
            server_url: "http://127.0.0.1:1/sync".into(),
            remote_uri: "contacts".into(),
            next_anchor: "42".into(),
            source_revisions: [("eds:system-address-book".to_string(), "rev(3)".to_string())].into(),
            upserts: (1..=3)
                .map(|i| CommitItem { luid: i, source_id: "eds:x".into(), local_id: format!("u{i}").into(), hash: Some([i as u8; 16]), ..Default::default() })
                .collect(),
            next_luid: 4,
            ..Default::default()
        };
        s.commit_session(&name, c, &commit).unwrap();
        let st = s.class_state(&name, c).unwrap().unwrap();
        assert_eq!(st.last_anchor.as_deref(), Some("42"));
        assert_eq!(st.source_revisions["eds:system-address-book"], "rev(3)");
        assert!(!st.needs_slow_sync);
        assert_eq!(s.tracked_items(&name, c).unwrap().len(), 3);
        assert_eq!(s.next_luid(&name, c).unwrap(), 4);

        s.mark_needs_slow_sync(&name, c).unwrap();
        assert!(s.class_state(&name, c).unwrap().unwrap().needs_slow_sync);
        // the anchor did not move
        assert_eq!(s.class_state(&name, c).unwrap().unwrap().last_anchor.as_deref(), Some("42"));

        let commit2 = SessionCommit { removals: vec![2], next_anchor: "43".into(), next_luid: 4, ..commit.clone() };
        s.commit_session(&name, c, &SessionCommit { upserts: vec![], ..commit2 }).unwrap();
        let luids: Vec<u64> = s.tracked_items(&name, c).unwrap().iter().map(|t| t.luid).collect();
        assert_eq!(luids, vec![1, 3]);
        assert!(!s.class_state(&name, c).unwrap().unwrap().needs_slow_sync);
    }

    #[test]
    fn history_and_interrupted_jobs() {
        let (s, name) = store_with_account();
        let j1 = s.insert_job(&name, "backup", 1).unwrap();
        s.finish_job(j1, "succeeded", "", &serde_json::json!({"classes": {}})).unwrap();
        let j2 = s.insert_job(&name, "backup", 2).unwrap();
        assert_eq!(s.fail_interrupted_jobs().unwrap(), 1);
        let h = s.history(10).unwrap();
        assert_eq!(h.iter().map(|j| j.id).collect::<Vec<_>>(), vec![j2, j1]);
        assert_eq!(h[0].state, "failed");
        assert_eq!(s.last_backup().unwrap().unwrap().id, j2);
    }

    /// A database written by schema version 1 (the first release) is migrated without losing
    /// accounts, class settings, anchors, tracked items or history.
    #[test]
    fn upgrades_a_version_1_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO installation VALUES ('device_id', 'imsync-00112233aabbccdd');
                 INSERT INTO accounts (id, name, protocol, im_id, display_name, server_url, username, is_default,
                     server_nonce, created_at, updated_at)
                 VALUES (7, 'xmpp:old@example.org', 'xmpp', 'old@example.org', 'Old', 'http://srv/sync', 'old', 1,
                     'bm9uY2U=', 1, 1);
                 INSERT INTO class_settings VALUES (7, 'contacts', 'card', 'two-way', 1);
                 INSERT INTO sync_state (account_id, class, server_url, remote_uri, last_anchor, source_revisions)
                 VALUES (7, 'contacts', 'http://srv/sync', 'card', '1700000000', '{\"eds:system-address-book\":\"r(5)\"}');
                 INSERT INTO items VALUES (7, 'contacts', 1, 'eds:system-address-book', 'pas-id-1', x'0102');
                 INSERT INTO luid_counters VALUES (7, 'contacts', 2);
                 INSERT INTO jobs (account, kind, state, started_at, finished_at, report)
                 VALUES ('xmpp:old@example.org', 'backup', 'succeeded', 1, 2, '{}');",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), Store::SCHEMA_VERSION);
        assert_eq!(s.device_id().unwrap(), "imsync-00112233aabbccdd");
        let a = s.default_account().unwrap().unwrap();
        assert_eq!((a.name().as_str(), a.display_name.as_str(), a.server_url.as_str()), ("xmpp:old@example.org", "Old", "http://srv/sync"));
        let cs = a.class(DataClass::Contacts);
        assert_eq!((cs.remote_uri.as_str(), cs.mode.as_str(), cs.enabled), ("card", "two-way", true));
        let st = s.class_state("xmpp:old@example.org", DataClass::Contacts).unwrap().unwrap();
        assert_eq!(st.last_anchor.as_deref(), Some("1700000000"));
        assert_eq!(st.source_revisions["eds:system-address-book"], "r(5)");
        assert_eq!(s.tracked_items("xmpp:old@example.org", DataClass::Contacts).unwrap().len(), 1);
        assert_eq!(s.next_luid("xmpp:old@example.org", DataClass::Contacts).unwrap(), 2);
        assert_eq!(s.server_nonce("xmpp:old@example.org").unwrap().as_deref(), Some("bm9uY2U="));
        assert_eq!(s.history(10).unwrap().len(), 1);
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn refuses_a_newer_schema_and_migrates_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), Store::SCHEMA_VERSION);
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 999).unwrap();
        assert!(matches!(Store::open(&path), Err(ProfileError::Schema(_))));
    }
}
