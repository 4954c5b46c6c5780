-- The nonces of signed application requests, kept while their signature's time
-- is within the accepted skew: one seen again is a replay, refused on every
-- replica. Expired ones are deleted by the maintenance round.
CREATE TABLE application_nonces (
    application_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (application_id, nonce)
);
CREATE INDEX application_nonces_expires ON application_nonces (expires);
