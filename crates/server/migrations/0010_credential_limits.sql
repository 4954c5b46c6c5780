-- Credentials and accounts that end when they should. Portable SQL, as 0001 to 0007.

-- An application certificate registered with a management credential that
-- expires stops signing then (a credential cannot outlive its issuer); NULL: it
-- signs until removed.
ALTER TABLE application_certificates ADD COLUMN expires BIGINT;
