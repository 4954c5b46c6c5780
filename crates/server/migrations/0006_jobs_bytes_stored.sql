-- What a job's agent had stored on the service (each file once), beside
-- bytes_uploaded, what crossed the link (retries included). Older rows: 0.
ALTER TABLE jobs ADD COLUMN bytes_stored BIGINT NOT NULL DEFAULT 0;
