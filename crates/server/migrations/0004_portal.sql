-- The web portal: people who sign in, their sessions, and per-drive ingest progress.

-- A portal user belongs to one subscription, or is an operator (subscription_id NULL).
CREATE TABLE portal_users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    subscription_id TEXT REFERENCES subscriptions (id),
    password_hash TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- A signed-in browser. The cookie carries `<id>.<secret>`; only the secret's BLAKE3
-- hash is kept (the secret is 256 random bits, so a fast hash is enough).
CREATE TABLE portal_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES portal_users (id),
    secret_hash TEXT NOT NULL,
    -- Sent back in every form of the session and checked on every POST.
    csrf_token TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX portal_sessions_user ON portal_sessions (user_id);

-- The next scheduled backup, as the machine's agent last reported it.
ALTER TABLE machines ADD COLUMN next_backup BIGINT;

-- What diskprep put on each drive, and what the ingest station has stored so far.
ALTER TABLE import_job_drives ADD COLUMN data_bytes BIGINT;
ALTER TABLE import_job_drives ADD COLUMN bytes_received BIGINT NOT NULL DEFAULT 0;
