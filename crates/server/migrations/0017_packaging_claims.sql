-- Packaging an import job (assembling its parts into files) is done by one
-- request at a time, whichever replica it reaches: it claims the job with a
-- conditional UPDATE, renews the claim while it works and clears it at the end.
-- A claim not renewed for PACKAGING_CLAIM_SECONDS (its replica died) is taken
-- over. Columns only added: replicas of the previous release keep working.
ALTER TABLE import_jobs ADD COLUMN packaging_claim TEXT;
ALTER TABLE import_jobs ADD COLUMN packaging_claimed BIGINT;
