-- The portal's failed sign-in counts (sign_in_limit.rs), shared by every
-- replica: one row per tally (an address over all sources, or an address from
-- one source). An attempt is counted before its password is checked, by one
-- conditional UPDATE, so attempts spread over replicas get no more password
-- checks than the limit. Rows whose window has passed are swept by maintenance.
CREATE TABLE sign_in_tallies (
    tally TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    since BIGINT NOT NULL
);
