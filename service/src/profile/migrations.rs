//! Schema migrations of the state database. `PRAGMA user_version` holds the number of
//! migrations applied; each entry below runs once, in order, inside one transaction.
//! Never edit a released migration: append a new one.

pub const MIGRATIONS: &[&str] = &[
    // 1: installation identity, accounts, per-class settings and sync state, item tracking,
    //    server id maps, job history.
    r#"
    CREATE TABLE installation (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE accounts (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,          -- <protocol>:<im_id>
        protocol     TEXT NOT NULL,
        im_id        TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        server_url   TEXT NOT NULL DEFAULT '',
        username     TEXT NOT NULL DEFAULT '',
        is_default   INTEGER NOT NULL DEFAULT 0,
        server_nonce TEXT,                          -- base64 NextNonce of the server, for md5 auth
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE TABLE class_settings (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        class      TEXT NOT NULL,
        remote_uri TEXT NOT NULL,
        mode       TEXT NOT NULL,
        enabled    INTEGER NOT NULL,
        PRIMARY KEY (account_id, class)
    );
    -- What the last successful session of a class left behind.
    CREATE TABLE sync_state (
        account_id         INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        class              TEXT NOT NULL,
        server_url         TEXT NOT NULL,           -- anchors are only valid for this server ...
        remote_uri         TEXT NOT NULL,           -- ... and this database
        last_anchor        TEXT,                    -- our Next anchor of the last successful session
        source_revisions   TEXT NOT NULL DEFAULT '{}', -- JSON: source id -> revision seen then
        needs_slow_sync    INTEGER NOT NULL DEFAULT 0, -- a session sent changes and did not finish
        server_other_items INTEGER NOT NULL DEFAULT 0, -- items the server holds that this phone does not
        last_success       INTEGER,
        PRIMARY KEY (account_id, class)
    );
    -- One row per item the server has from us: its local id on the phone, the short LUID
    -- used on the wire, and a hash of what was sent (change tracking).
    CREATE TABLE items (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        class      TEXT NOT NULL,
        luid       INTEGER NOT NULL,
        source_id  TEXT NOT NULL,
        local_id   TEXT NOT NULL,
        hash       BLOB NOT NULL,
        PRIMARY KEY (account_id, class, luid),
        UNIQUE (account_id, class, source_id, local_id)
    );
    CREATE TABLE luid_counters (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        class      TEXT NOT NULL,
        next_luid  INTEGER NOT NULL,
        PRIMARY KEY (account_id, class)
    );
    -- LUID <-> server id, for items the server sent us (restore, two-way).
    CREATE TABLE id_map (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        class      TEXT NOT NULL,
        luid       TEXT NOT NULL,
        server_id  TEXT NOT NULL,
        PRIMARY KEY (account_id, class, luid)
    );
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        account     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        error       TEXT NOT NULL DEFAULT '',
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        report      TEXT NOT NULL DEFAULT '{}'      -- JSON
    );
    "#,
    // 2: the SyncML encoding a server accepts ("xml" after it refused WBXML).
    r#"
    ALTER TABLE accounts ADD COLUMN server_encoding TEXT;
    "#,
    // 3: a pinned server certificate (SHA-256, hex).
    r#"
    ALTER TABLE accounts ADD COLUMN server_cert_sha256 TEXT NOT NULL DEFAULT '';
    "#,
    // 4: the IM friend list (roster) of each account, and its revision: a counter bumped on
    //    every change of the roster or of the account's display name (both are backed up
    //    as the `roster` class).
    r#"
    ALTER TABLE accounts ADD COLUMN roster_revision INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE roster (
        account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        im_id        TEXT NOT NULL,
        name         TEXT NOT NULL DEFAULT '',
        groups       TEXT NOT NULL DEFAULT '[]',    -- JSON array of strings, sorted
        subscription TEXT NOT NULL DEFAULT 'none',  -- none, to, from, both
        PRIMARY KEY (account_id, im_id)
    );
    "#,
    // 5: per tracked item, a digest of the item as the phone's store gave it (before
    //    conversion): an incremental backup skips converting items whose digest is known.
    r#"
    ALTER TABLE items ADD COLUMN source_digest BLOB;
    "#,
    // 6: what each account's server knows of us and we of it, so that a session need not
    //    exchange DevInf every time: the server's DevInf (XML) as last received, and a
    //    digest of the DevInf the server last took from us. Both about `server_url` only.
    r#"
    CREATE TABLE server_devinf (
        account_id   INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        server_url   TEXT NOT NULL,
        theirs       BLOB,
        theirs_at    INTEGER NOT NULL DEFAULT 0,
        ours_digest  BLOB
    );
    "#,
];
