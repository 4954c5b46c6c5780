-- What a complete seed and a whole repository hold. First, the file list of an
-- import job: every file of the staging location its drive set
-- carries, registered by diskprep (PUT /import-jobs/{id}/file-list). The job
-- completes, and its seed is adopted, only when the container holds every one of
-- them whole. Portable SQL, as 0001 to 0004.

-- The list's summary; NULL until it is registered (and for jobs made before).
ALTER TABLE import_jobs ADD COLUMN file_list_files BIGINT;
ALTER TABLE import_jobs ADD COLUMN file_list_bytes BIGINT;
ALTER TABLE import_jobs ADD COLUMN file_list_digest TEXT;

CREATE TABLE import_job_files (
    job_id TEXT NOT NULL REFERENCES import_jobs (id),
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (job_id, path)
);

-- Every file the service stored in a machine's repository (an upload, or a seed
-- adopted into it) and that no one removed through the API since: what
-- `offsite server check` expects to find in the storage. A file lost or deleted
-- behind the service's back (a pack a recovery point needs) is named by it.
-- Files stored before this migration are not listed.
CREATE TABLE repository_files (
    machine_id TEXT NOT NULL REFERENCES machines (id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    PRIMARY KEY (machine_id, kind, name)
);
