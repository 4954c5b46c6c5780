-- Import jobs: drives shipped to a datacenter instead of a first backup over the
-- network (../shared/DESIGN.md "Import job life cycle"). Portable SQL, as 0001:
-- ids are text, times are Unix seconds (BIGINT), states are snake_case text.

CREATE TABLE import_jobs (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    -- Unique across the service: it is on the drives, in paths and on labels.
    name TEXT NOT NULL UNIQUE,
    storage_account_id TEXT NOT NULL REFERENCES storage_accounts (id),
    container_id TEXT NOT NULL REFERENCES containers (id),
    datacenter_id TEXT NOT NULL REFERENCES datacenters (id),
    state TEXT NOT NULL,
    created BIGINT NOT NULL,
    -- When the shipping details were committed: the arrival deadline runs from here.
    shipped_at BIGINT,
    carrier TEXT,
    -- Unique across all import jobs; NULL until shipping details are given.
    tracking_number TEXT UNIQUE,
    ship_date TEXT,
    return_address TEXT,
    contact TEXT,
    drive_count BIGINT
);
CREATE INDEX import_jobs_subscription ON import_jobs (subscription_id, created);

CREATE TABLE import_job_drives (
    job_id TEXT NOT NULL REFERENCES import_jobs (id),
    -- The drive id from the drive header, lowercase hex.
    drive_id TEXT NOT NULL,
    drive_index BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (job_id, drive_id),
    UNIQUE (job_id, drive_index)
);

-- Every state change of a job (drive_id NULL) or of one of its drives, in order:
-- the timeline the API, the portal, diskprep and the agent show.
CREATE TABLE import_job_events (
    job_id TEXT NOT NULL REFERENCES import_jobs (id),
    -- 1, 2, 3 … per job: the order of the timeline, and a guard against two
    -- writers appending at once.
    seq BIGINT NOT NULL,
    drive_id TEXT,
    state TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT,
    PRIMARY KEY (job_id, seq)
);
