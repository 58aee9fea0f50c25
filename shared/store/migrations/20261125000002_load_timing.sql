-- How long a snapshot took to land (receive, validate, COPY), shown as the cycle's ingest phase.
ALTER TABLE snapshots
    ADD COLUMN load_started_at timestamptz,
    ADD COLUMN load_millis bigint CHECK (load_millis >= 0);
