-- Export jobs (offline restore): recovery points of a vault's machines written
-- by a datacenter's station onto drives and shipped back to the customer.
CREATE TABLE export_jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    vault_id TEXT NOT NULL REFERENCES vaults (id),
    datacenter_id TEXT NOT NULL REFERENCES datacenters (id),
    state TEXT NOT NULL,
    created BIGINT NOT NULL,
    drive_size BIGINT NOT NULL,
    -- The requesting agent's X25519 public key (64 hex digits), or NULL.
    export_public_key TEXT,
    return_address TEXT,
    carrier TEXT,
    tracking_number TEXT
);
CREATE INDEX export_jobs_subscription ON export_jobs (subscription_id);

-- What each machine's part carries (repository paths as stored), and the
-- recovery points it restores.
CREATE TABLE export_job_files (
    job_id TEXT NOT NULL REFERENCES export_jobs (id),
    machine_id TEXT NOT NULL REFERENCES machines (id),
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (job_id, machine_id, path)
);
CREATE TABLE export_job_points (
    job_id TEXT NOT NULL REFERENCES export_jobs (id),
    machine_id TEXT NOT NULL REFERENCES machines (id),
    snapshot_id TEXT NOT NULL,
    PRIMARY KEY (job_id, machine_id, snapshot_id)
);

-- The drives the station wrote; the recovery key is shown to the customer only.
CREATE TABLE export_job_drives (
    job_id TEXT NOT NULL REFERENCES export_jobs (id),
    drive_id TEXT NOT NULL,
    drive_index BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    recovery_key TEXT NOT NULL,
    PRIMARY KEY (job_id, drive_id)
);

-- The timeline, as import_job_events: seq 1, 2, 3 … guards two writers.
CREATE TABLE export_job_events (
    job_id TEXT NOT NULL REFERENCES export_jobs (id),
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT,
    PRIMARY KEY (job_id, seq)
);
