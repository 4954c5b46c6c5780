-- A certificate belongs to its application, not to the whole service: one
-- technician's machine may prepare seeds for two subscriptions with the same key,
-- and one subscription registering a certificate neither blocks nor reveals
-- another's. The table is rebuilt because SQLite cannot change a primary key.
CREATE TABLE application_certificates_by_application (
    application_id TEXT NOT NULL REFERENCES applications (id),
    thumbprint TEXT NOT NULL,
    cert_der TEXT NOT NULL,
    added BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    expires BIGINT,
    PRIMARY KEY (application_id, thumbprint)
);
INSERT INTO application_certificates_by_application (application_id, thumbprint, cert_der, added, added_by, expires)
    SELECT application_id, thumbprint, cert_der, added, added_by, expires FROM application_certificates;
DROP TABLE application_certificates;
ALTER TABLE application_certificates_by_application RENAME TO application_certificates;

-- Challenges the service gave out for proofs of possession: whoever uploads a
-- certificate signs one with the certificate's key. Single use; the maintenance
-- round deletes expired ones.
CREATE TABLE certificate_challenges (
    challenge TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    expires BIGINT NOT NULL
);
CREATE INDEX certificate_challenges_expires ON certificate_challenges (expires);
