-- The syncguard schema. Each table names the service that owns (writes) it; others only read.
-- Exceptions are spelled out where they exist.

-- ---------------------------------------------------------------- ingest
-- A sync configuration.
CREATE TABLE jobs (
    job_id                  uuid PRIMARY KEY,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    source_kind             text NOT NULL CHECK (source_kind IN ('push', 'file', 'ldap')),
    -- Kind-specific settings (never a secret: LDAP passwords come from a file or variable).
    source_config           jsonb NOT NULL DEFAULT '{}',
    scope_rules             jsonb NOT NULL DEFAULT '{}',
    schedule_interval_secs  integer NOT NULL DEFAULT 1800 CHECK (schedule_interval_secs > 0),
    deprovision_mode        text NOT NULL DEFAULT 'delete' CHECK (deprovision_mode IN ('delete', 'disable')),
    notification_recipients text[] NOT NULL DEFAULT '{}',
    retention_days          integer NOT NULL DEFAULT 30 CHECK (retention_days BETWEEN 1 AND 365),
    hold_limit_secs         integer NOT NULL DEFAULT 604800 CHECK (hold_limit_secs > 0),
    required_approvals      smallint NOT NULL DEFAULT 1 CHECK (required_approvals IN (1, 2)),
    allow_empty_source      boolean NOT NULL DEFAULT false,
    next_run_at             timestamptz,
    created_by              text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- Set when the configuration is deleted; target objects and logs outlive the job.
    deleted_at              timestamptz
);
CREATE INDEX jobs_due ON jobs (next_run_at) WHERE deleted_at IS NULL;

-- A complete read of a source (full) or a complete batch of changes (delta).
-- Rows exist only for snapshots that completed: a load commits in one transaction.
CREATE TABLE snapshots (
    snapshot_id     uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs (job_id),
    kind            text NOT NULL CHECK (kind IN ('full', 'delta')),
    origin          text NOT NULL CHECK (origin IN ('push', 'file', 'ldap', 'import')),
    idempotency_key text,
    object_count    bigint NOT NULL CHECK (object_count >= 0),
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, idempotency_key)
);
CREATE INDEX snapshots_by_job ON snapshots (job_id, received_at DESC);

-- The objects of a snapshot. `change` is 'present' in full snapshots, 'upsert' or 'delete' in deltas.
CREATE TABLE source_objects (
    snapshot_id        uuid NOT NULL REFERENCES snapshots (snapshot_id) ON DELETE CASCADE,
    anchor             text NOT NULL,
    change             text NOT NULL DEFAULT 'present' CHECK (change IN ('present', 'upsert', 'delete')),
    object_type        text NOT NULL CHECK (object_type IN ('user', 'group')),
    distinguished_name text NOT NULL DEFAULT '',
    attributes         jsonb NOT NULL DEFAULT '{}',
    enabled            boolean NOT NULL DEFAULT true,
    member_anchors     text[] NOT NULL DEFAULT '{}',
    deleted_in_source  boolean NOT NULL DEFAULT false,
    -- SHA-256 of the canonical attributes, enabled flag, DN and members: the diff compares it.
    content_hash       bytea NOT NULL,
    PRIMARY KEY (snapshot_id, anchor)
);

-- Failed source reads: they never become cycles, but the job shows them.
CREATE TABLE source_failures (
    failure_id  uuid PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (job_id),
    origin      text NOT NULL,
    error       text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX source_failures_by_job ON source_failures (job_id, failed_at DESC);

-- ---------------------------------------------------------------- stager
-- One run of a job. State changes follow DESIGN.md's state machine; each is one transaction.
CREATE TABLE cycles (
    cycle_id       uuid PRIMARY KEY,
    job_id         uuid NOT NULL REFERENCES jobs (job_id),
    snapshot_id    uuid NOT NULL REFERENCES snapshots (snapshot_id),
    state          text NOT NULL CHECK (state IN ('ingesting', 'staged', 'evaluating', 'applying',
                       'completed', 'quarantined', 'allowed', 'rejected', 'superseded', 'failed')),
    source_objects bigint NOT NULL DEFAULT 0,
    -- [{"phase": "stage", "started_at": ..., "millis": ...}, ...]
    phases         jsonb NOT NULL DEFAULT '[]',
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    -- Staging is idempotent by snapshot.
    UNIQUE (snapshot_id)
);
CREATE INDEX cycles_by_job ON cycles (job_id, created_at DESC);
-- At most one unfinished cycle per job: a quarantined job runs no new cycle.
CREATE UNIQUE INDEX cycles_one_open_per_job ON cycles (job_id)
    WHERE state IN ('ingesting', 'staged', 'evaluating', 'applying', 'quarantined', 'allowed', 'rejected');

-- The target directory. The stager writes creates, updates, disables and enables; the retention
-- service writes soft deletes, restores and purges (deleted_at, purge_after, memberships kept).
CREATE TABLE directory_objects (
    object_id          uuid PRIMARY KEY,
    job_id             uuid NOT NULL REFERENCES jobs (job_id),
    anchor             text NOT NULL,
    object_type        text NOT NULL CHECK (object_type IN ('user', 'group')),
    distinguished_name text NOT NULL DEFAULT '',
    attributes         jsonb NOT NULL DEFAULT '{}',
    enabled            boolean NOT NULL DEFAULT true,
    content_hash       bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Soft delete: set together; the object is restorable until purge_after.
    deleted_at         timestamptz,
    purge_after        timestamptz,
    -- Group anchors the object belonged to when it was soft-deleted, restored with it.
    memberships_at_deletion text[] NOT NULL DEFAULT '{}',
    UNIQUE (job_id, anchor),
    CHECK ((deleted_at IS NULL) = (purge_after IS NULL))
);
CREATE INDEX directory_objects_live ON directory_objects (job_id, object_type, anchor) WHERE deleted_at IS NULL;
CREATE INDEX directory_objects_purge_due ON directory_objects (purge_after) WHERE deleted_at IS NOT NULL;

-- Group memberships of the target, by anchor.
CREATE TABLE directory_memberships (
    job_id        uuid NOT NULL REFERENCES jobs (job_id),
    group_anchor  text NOT NULL,
    member_anchor text NOT NULL,
    PRIMARY KEY (job_id, group_anchor, member_anchor)
);
CREATE INDEX directory_memberships_by_member ON directory_memberships (job_id, member_anchor);

-- One planned change of a cycle. Attribute data is read from the cycle's source row at apply time.
CREATE TABLE staged_actions (
    action_id          uuid PRIMARY KEY,
    cycle_id           uuid NOT NULL REFERENCES cycles (cycle_id),
    job_id             uuid NOT NULL REFERENCES jobs (job_id),
    anchor             text NOT NULL,
    object_type        text NOT NULL CHECK (object_type IN ('user', 'group')),
    object_id          uuid,
    action             text NOT NULL CHECK (action IN ('create', 'update', 'disable', 'enable', 'delete', 'restore')),
    reason             text NOT NULL CHECK (reason IN ('new_in_source', 'attributes_changed', 'disabled_in_source',
                           'enabled_in_source', 'removed_from_source', 'out_of_scope', 'reappeared')),
    status             text NOT NULL CHECK (status IN ('staged', 'held', 'applied', 'allowed', 'rejected',
                           'superseded', 'skipped_pinned', 'failed')),
    changed_attributes text[] NOT NULL DEFAULT '{}',
    display_name       text NOT NULL DEFAULT '',
    applied_at         timestamptz,
    UNIQUE (cycle_id, anchor)
);
CREATE INDEX staged_actions_by_cycle ON staged_actions (cycle_id, action, object_type);
-- Rolling-window protection rules count what was applied recently.
CREATE INDEX staged_actions_applied ON staged_actions (job_id, applied_at) WHERE applied_at IS NOT NULL;

-- Append-only record of every planned, held, applied, allowed, rejected, restored and purged
-- action and of every admin decision. Every service appends; nobody updates or deletes.
CREATE TABLE provisioning_log (
    log_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    job_id             uuid NOT NULL,
    cycle_id           uuid,
    action_id          uuid,
    quarantine_id      uuid,
    object_id          uuid,
    anchor             text,
    object_type        text,
    action             text,
    status             text,
    reason             text,
    -- The products' word: StagedDelete, StagedDisable, Create, Delete, AllowDeletes, ...
    display_action     text NOT NULL,
    changed_attributes text[] NOT NULL DEFAULT '{}',
    actor              text NOT NULL,
    detail             text NOT NULL DEFAULT ''
);
CREATE INDEX provisioning_log_by_job ON provisioning_log (job_id, log_id DESC);
CREATE INDEX provisioning_log_by_cycle ON provisioning_log (cycle_id, log_id DESC) WHERE cycle_id IS NOT NULL;
CREATE INDEX provisioning_log_by_anchor ON provisioning_log (job_id, anchor, log_id DESC) WHERE anchor IS NOT NULL;
CREATE INDEX provisioning_log_by_display_action ON provisioning_log (display_action, log_id DESC);
CREATE INDEX provisioning_log_by_time ON provisioning_log (at);
-- A retried step never logs the same transition twice.
CREATE UNIQUE INDEX provisioning_log_once_per_transition ON provisioning_log (action_id, status)
    WHERE action_id IS NOT NULL;

CREATE FUNCTION provisioning_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'provisioning_log rows are never updated or deleted' USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER provisioning_log_append_only
    BEFORE UPDATE OR DELETE ON provisioning_log
    FOR EACH ROW EXECUTE FUNCTION provisioning_log_is_append_only();

-- ---------------------------------------------------------------- gate
-- Whether a job is protected, and who last changed that.
CREATE TABLE job_protection (
    job_id     uuid PRIMARY KEY REFERENCES jobs (job_id),
    enabled    boolean NOT NULL DEFAULT true,
    updated_by text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The protection rules of a job. A job without rows here has the default rule.
CREATE TABLE protection_rules (
    rule_id         uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs (job_id),
    position        integer NOT NULL,
    name            text NOT NULL,
    counted_actions text[] NOT NULL CHECK (cardinality(counted_actions) > 0),
    -- NULL counts users and groups alike.
    object_type     text CHECK (object_type IN ('user', 'group')),
    max_count       bigint CHECK (max_count >= 0),
    max_percent     double precision CHECK (max_percent > 0 AND max_percent <= 100),
    min_population  bigint NOT NULL DEFAULT 0 CHECK (min_population >= 0),
    -- NULL: per cycle; otherwise a rolling window of this many seconds.
    window_secs     integer CHECK (window_secs > 0),
    CHECK (max_count IS NOT NULL OR max_percent IS NOT NULL),
    UNIQUE (job_id, position)
);

-- A held cycle and its fate.
CREATE TABLE quarantines (
    quarantine_id      uuid PRIMARY KEY,
    job_id             uuid NOT NULL REFERENCES jobs (job_id),
    cycle_id           uuid NOT NULL UNIQUE REFERENCES cycles (cycle_id),
    state              text NOT NULL CHECK (state IN ('open', 'allowed', 'partially_allowed', 'rejected', 'superseded')),
    breaches           jsonb NOT NULL,
    -- SHA-256 over the sorted held action ids: approvals must quote it.
    digest             text NOT NULL,
    required_approvals smallint NOT NULL DEFAULT 1,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    hold_until         timestamptz NOT NULL,
    closed_at          timestamptz,
    closed_by          text,
    last_reminded_at   timestamptz
);
CREATE UNIQUE INDEX quarantines_one_open_per_job ON quarantines (job_id) WHERE state = 'open';

-- Each approver's decision on a quarantine.
CREATE TABLE approvals (
    quarantine_id uuid NOT NULL REFERENCES quarantines (quarantine_id),
    principal     text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('allow', 'reject')),
    reason        text NOT NULL CHECK (length(reason) > 0),
    anchors       text[] NOT NULL DEFAULT '{}',
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (quarantine_id, principal, decision)
);

-- Objects no cycle may delete or disable until they reappear in scope or are released.
CREATE TABLE pins (
    job_id        uuid NOT NULL REFERENCES jobs (job_id),
    anchor        text NOT NULL,
    quarantine_id uuid REFERENCES quarantines (quarantine_id),
    pinned_by     text NOT NULL,
    reason        text NOT NULL,
    pinned_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, anchor)
);

-- ---------------------------------------------------------------- notifier
-- The email outbox: stored before Notify answers, sent until the server accepts it.
CREATE TABLE notification_outbox (
    notification_id uuid PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    job_id          uuid,
    kind            text NOT NULL,
    recipients      text[] NOT NULL CHECK (cardinality(recipients) > 0),
    subject         text NOT NULL,
    -- The protobuf-encoded NotificationEvent the message is written from.
    event           bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_outbox_by_job ON notification_outbox (job_id, created_at DESC);

-- Every delivery attempt.
CREATE TABLE notification_attempts (
    notification_id uuid NOT NULL REFERENCES notification_outbox (notification_id),
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    accepted        boolean NOT NULL,
    error           text,
    PRIMARY KEY (notification_id, attempt)
);

-- ---------------------------------------------------------------- retention
-- What remains of a purged object: enough to say it was purged, and when.
CREATE TABLE purged_objects (
    object_id   uuid PRIMARY KEY,
    job_id      uuid NOT NULL,
    anchor      text NOT NULL,
    object_type text NOT NULL,
    deleted_at  timestamptz NOT NULL,
    purged_at   timestamptz NOT NULL,
    purged_by   text NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX purged_objects_by_anchor ON purged_objects (job_id, anchor);
