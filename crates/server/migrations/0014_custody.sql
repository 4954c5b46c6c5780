-- Chains of custody (docs/CUSTODY.md): one hash-chained, signed log per job,
-- keyed by the job's kind and id so export jobs can append to the same table.
-- The primary key makes two appenders of the same sequence number race: one
-- insert wins, the other answers 409 and signs the next event anew.
CREATE TABLE custody_events (
    job_kind TEXT NOT NULL,
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    drive_id TEXT,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    recorded BIGINT NOT NULL,
    PRIMARY KEY (job_kind, job_id, seq)
);

-- The public keys custody events are signed with, by actor
-- (`application:<application id>:<thumbprint>`, `station:<credential id>`). Kept
-- after a certificate is removed or a credential revoked, so the events they
-- signed still verify.
CREATE TABLE custody_keys (
    actor TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    description TEXT NOT NULL,
    registered BIGINT NOT NULL
);
