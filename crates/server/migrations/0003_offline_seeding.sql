-- Offline seeding: the subscription's application identity (certgen), the
-- datacenters' import keys, drive fingerprints and adoptions of seeds into vaults.
-- Portable SQL, as 0001 and 0002: ids are text, times are Unix seconds (BIGINT).

-- The offline-seeding application of a subscription (one per subscription).
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL UNIQUE REFERENCES subscriptions (id),
    created BIGINT NOT NULL
);

-- The certificates an application signs its requests with. The thumbprint is the
-- uppercase hex SHA-256 of the DER certificate; cert_der is that DER in base64.
CREATE TABLE application_certificates (
    thumbprint TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications (id),
    cert_der TEXT NOT NULL,
    added BIGINT NOT NULL,
    -- Who uploaded it: `operator` or the subscription id.
    added_by TEXT NOT NULL
);
CREATE INDEX application_certificates_application ON application_certificates (application_id);

-- The X25519 public key drives are encrypted to (64 hex digits); the secret stays
-- at the datacenter's ingest stations. NULL for datacenters added before.
ALTER TABLE datacenters ADD COLUMN import_public_key TEXT;

-- The drive header fingerprint diskprep registered (64 hex digits), if it did.
ALTER TABLE import_job_drives ADD COLUMN fingerprint TEXT;

-- A seed copied from an import job's container into a machine's vault repository.
CREATE TABLE adoptions (
    machine_id TEXT NOT NULL REFERENCES machines (id),
    import_job_id TEXT NOT NULL REFERENCES import_jobs (id),
    adopted BIGINT NOT NULL,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (machine_id, import_job_id)
);
