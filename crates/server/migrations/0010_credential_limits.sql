-- Credentials and accounts that end when they should. Portable SQL, as 0001 to 0007.

-- An application certificate registered with a management credential that
-- expires stops signing then (a credential cannot outlive its issuer); NULL: it
-- signs until removed.
ALTER TABLE application_certificates ADD COLUMN expires BIGINT;

-- A portal user an operator disabled (since when; NULL while enabled). Every
-- disable, removal and new password raises session_epoch; a session keeps the
-- epoch its sign-in read and is refused once the user's differs, so such a change
-- ends the user's sessions at once, even one whose sign-in checked the old
-- password a moment before.
ALTER TABLE portal_users ADD COLUMN disabled BIGINT;
ALTER TABLE portal_users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE portal_sessions ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;

-- A subscription's storage quota in bytes, set by the operator; NULL for none.
-- What counts is the size of every file of the subscription's machines'
-- repositories the ledger lists, soft-deleted ones too (they occupy the storage
-- until purged).
ALTER TABLE subscriptions ADD COLUMN quota_bytes BIGINT;
