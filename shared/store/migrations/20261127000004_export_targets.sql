-- Export targets: where a job's applied changes are written (LDAP directories, SCIM 2.0
-- applications), and the exporter's own records of how far each target got.

-- ---------------------------------------------------------------- ingest
ALTER TABLE jobs ADD COLUMN targets jsonb NOT NULL DEFAULT '[]';

-- ---------------------------------------------------------------- retention
-- The feed keeps changes for SYNCGUARD_FEED_RETENTION_DAYS; every batch up to this one is
-- gone, so a reader asking to resume from before it is told so (OUT_OF_RANGE).
ALTER TABLE feed_clock ADD COLUMN pruned_through bigint NOT NULL DEFAULT 0;

-- Readers of the feed (the exporter, WatchChanges) hear of new changes the moment they
-- commit: one notification per job per writing statement, with the job id.
CREATE FUNCTION syncguard_announce_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('syncguard_feed', job_id::text) FROM (SELECT DISTINCT job_id FROM added) jobs;
    RETURN NULL;
END
$$;
CREATE TRIGGER directory_changes_announce AFTER INSERT ON directory_changes
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION syncguard_announce_changes();

-- ---------------------------------------------------------------- exporter
-- How far each target of a job got in the feed: the last change it recorded.
CREATE TABLE export_cursors (
    job_id          uuid NOT NULL REFERENCES jobs (job_id),
    target          text NOT NULL,
    batch           bigint NOT NULL DEFAULT 0,
    position        integer NOT NULL DEFAULT 0,
    exported        bigint NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    -- The target could not be reached: its words, until the next success.
    last_error      text,
    last_error_at   timestamptz,
    -- A new target first gets every live object (in anchor order, from after this anchor);
    -- NULL once done. The feed is followed from the batch current when it began.
    bootstrap_after text,
    PRIMARY KEY (job_id, target)
);

-- What each exported object is called in the target: its DN (LDAP) or id (SCIM).
CREATE TABLE export_objects (
    job_id     uuid NOT NULL REFERENCES jobs (job_id),
    target     text NOT NULL,
    anchor     text NOT NULL,
    target_ref text NOT NULL,
    PRIMARY KEY (job_id, target, anchor)
);

-- Objects a target refused: retried with backoff, parked as failed after the last attempt,
-- resolved when a later attempt or a later change of the object succeeds.
CREATE TABLE export_failures (
    failure_id      uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs (job_id),
    target          text NOT NULL,
    anchor          text NOT NULL,
    object_id       uuid NOT NULL,
    object_type     text NOT NULL CHECK (object_type IN ('user', 'group')),
    change          text NOT NULL,
    status          text NOT NULL CHECK (status IN ('retrying', 'failed', 'resolved')),
    attempts        integer NOT NULL DEFAULT 1,
    last_error      text NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX export_failures_open ON export_failures (job_id, target, anchor) WHERE status <> 'resolved';
CREATE INDEX export_failures_due ON export_failures (next_attempt_at) WHERE status = 'retrying';

GRANT INSERT, UPDATE, DELETE ON export_cursors, export_objects, export_failures TO syncguard_exporter;
GRANT SELECT ON export_cursors, export_objects, export_failures TO
    syncguard_ingest, syncguard_stager, syncguard_gate, syncguard_notifier, syncguard_retention, syncguard_exporter;
