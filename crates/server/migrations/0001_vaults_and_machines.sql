-- The service's metadata. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Ids are text, times are Unix seconds (BIGINT), lists are JSON text.

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL
);

-- Every secret a caller presents: operator tokens, subscription management
-- credentials, vault registration secrets, machine credentials. Only an Argon2id
-- hash of the secret is stored.
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT,
    used BIGINT,
    used_by TEXT,
    revoked BIGINT
);
CREATE INDEX credentials_subject ON credentials (subject);

CREATE TABLE vaults (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    name TEXT NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (subscription_id, name)
);

CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    vault_id TEXT NOT NULL REFERENCES vaults (id),
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    registered BIGINT NOT NULL,
    removed BIGINT,
    last_backup BIGINT
);
CREATE INDEX machines_vault ON machines (vault_id);

CREATE TABLE protected_items (
    machine_id TEXT NOT NULL REFERENCES machines (id),
    path TEXT NOT NULL,
    excludes TEXT NOT NULL,
    PRIMARY KEY (machine_id, path)
);

CREATE TABLE recovery_points (
    machine_id TEXT NOT NULL REFERENCES machines (id),
    snapshot_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    size BIGINT NOT NULL,
    file_count BIGINT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (machine_id, snapshot_id)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    started BIGINT NOT NULL,
    finished BIGINT,
    bytes_processed BIGINT NOT NULL,
    bytes_uploaded BIGINT NOT NULL,
    file_count BIGINT NOT NULL,
    message TEXT,
    errors TEXT NOT NULL
);
CREATE INDEX jobs_machine ON jobs (machine_id, started);

CREATE TABLE storage_accounts (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    -- Storage account names are global, as in Azure: they appear in agent config.
    name TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL
);

CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    storage_account_id TEXT NOT NULL REFERENCES storage_accounts (id),
    name TEXT NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (storage_account_id, name)
);

CREATE TABLE datacenters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    created BIGINT NOT NULL
);
