-- A vault a compromised machine cannot destroy. A machine's removal of a
-- repository file is a soft delete: the file stays stored, invisible to the
-- machine, until its purge date; the subscription can undelete it until then, and
-- only the service's purge removes it for good. Portable SQL, as 0001 to 0006.

-- When a machine removed the file (NULL while it is live), and from when the
-- service may purge it.
ALTER TABLE repository_files ADD COLUMN deleted BIGINT;
ALTER TABLE repository_files ADD COLUMN purge_after BIGINT;
-- A replica purging the file since then (a purge that died is taken over later).
ALTER TABLE repository_files ADD COLUMN purge_claimed BIGINT;
CREATE INDEX repository_files_purge ON repository_files (purge_after);

-- The vault's protection. Soft delete: days a removed file stays restorable
-- (14 to 180), NULL when it is off. Immutability: 'disabled', 'enabled' or
-- 'locked' (enabled for good); while not disabled, recovery points younger than
-- min_retention_days cannot be removed. A mass deletion alert is raised when a
-- machine removes more than mass_deletion_percent of its recovery points or bytes
-- within a day.
ALTER TABLE vaults ADD COLUMN soft_delete_days BIGINT DEFAULT 14;
ALTER TABLE vaults ADD COLUMN immutability TEXT NOT NULL DEFAULT 'disabled';
ALTER TABLE vaults ADD COLUMN min_retention_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE vaults ADD COLUMN mass_deletion_percent BIGINT NOT NULL DEFAULT 50;

-- Weakening a vault's protection (soft delete off or shorter, immutability off or
-- a shorter minimum retention) takes two people: the subscription asks, an
-- operator approves or rejects. `change` is the requested change as JSON.
CREATE TABLE protection_requests (
    id TEXT PRIMARY KEY,
    vault_id TEXT NOT NULL REFERENCES vaults (id),
    change TEXT NOT NULL,
    requested BIGINT NOT NULL,
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    decided BIGINT,
    decided_by TEXT,
    -- What the operator said with the decision.
    decision_note TEXT
);
CREATE INDEX protection_requests_vault ON protection_requests (vault_id);

-- Alerts the service raised: a mass deletion by a machine, one a machine a day.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    vault_id TEXT NOT NULL REFERENCES vaults (id),
    machine_id TEXT REFERENCES machines (id),
    kind TEXT NOT NULL,
    day BIGINT NOT NULL,
    raised BIGINT NOT NULL,
    message TEXT NOT NULL,
    UNIQUE (machine_id, kind, day)
);
