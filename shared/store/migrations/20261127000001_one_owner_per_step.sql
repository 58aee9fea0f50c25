-- One owner per table and per step of a cycle.
--
-- Before this migration a push waited on a chain of calls and several services wrote the
-- `cycles` and `staged_actions` rows. Now every service records only its own step in its own
-- tables, and a cycle's state is derived from those records (the `cycle_states` and
-- `action_states` views below):
--
--   ingest     accepts a push together with its cycle id and the job's order of receipt
--              (snapshots.cycle_id, snapshots.seq)                      -> queued
--   stager     stages it (cycles, staged_actions)                      -> evaluating
--   gate       decides it (decisions, quarantines, held_verdicts)      -> applying | quarantined
--                                                                         -> allowed | rejected | superseded
--   retention  applies what the gate decided to the target directory  -> completed
--              (directory_objects, directory_memberships, applied_cycles, directory_changes)
--
-- Each service connects with its own database role (created here) that may write only its
-- own tables; a test reads the grants back. The provisioning log is the one shared table:
-- append-only, every service appends its own rows.

-- ---------------------------------------------------------------- roles
DO $roles$
DECLARE
    service text;
    attempt integer;
BEGIN
    FOREACH service IN ARRAY ARRAY['ingest', 'stager', 'gate', 'notifier', 'retention', 'exporter'] LOOP
        -- Roles are shared by every database of the server: another database's migration may
        -- create them at the same moment.
        FOR attempt IN 1..20 LOOP
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'syncguard_' || service) THEN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', 'syncguard_' || service);
                END IF;
                -- So the services' connections may SET ROLE to it (superusers may anyway).
                IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                   AND NOT pg_has_role(current_user, 'syncguard_' || service,
                                       CASE WHEN current_setting('server_version_num')::int >= 160000
                                            THEN 'SET' ELSE 'MEMBER' END) THEN
                    EXECUTE format('GRANT %I TO %I', 'syncguard_' || service, current_user);
                END IF;
                EXIT;
            EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
                PERFORM pg_sleep(0.05);
            END;
        END LOOP;
    END LOOP;
END
$roles$;

-- ---------------------------------------------------------------- ingest
-- The job's order of receipt: every accepted push takes the next number, in the transaction
-- that records it, so pushes of one job are staged in the order they were acknowledged.
ALTER TABLE jobs
    ADD COLUMN push_seq bigint NOT NULL DEFAULT 0,
    -- The protection its creator asked for (an encoded syncguard.v1.InitialProtection); the
    -- gate records it as the job's protection (InitProtection, or at the first decision).
    ADD COLUMN initial_protection bytea NOT NULL DEFAULT '';

-- Before this migration a delta was stored whole (the previous snapshot plus the changes).
UPDATE snapshots SET kind = 'full' WHERE kind = 'delta';

ALTER TABLE snapshots
    -- The cycle this push becomes: known when the push is accepted, staged later.
    ADD COLUMN cycle_id uuid,
    -- Order of receipt within the job (jobs.push_seq); set as the push commits.
    ADD COLUMN seq bigint,
    -- The trace of the call that pushed it: the cycle's steps continue it.
    ADD COLUMN trace_parent text,
    -- Its source rows were released (a newer full read made them useless).
    ADD COLUMN rows_released boolean NOT NULL DEFAULT false;
UPDATE snapshots s SET cycle_id = c.cycle_id FROM cycles c WHERE c.snapshot_id = s.snapshot_id;
UPDATE snapshots SET cycle_id = gen_random_uuid() WHERE cycle_id IS NULL;
UPDATE snapshots s SET seq = numbered.n
FROM (SELECT snapshot_id, row_number() OVER (PARTITION BY job_id ORDER BY received_at, snapshot_id) AS n
      FROM snapshots) numbered
WHERE numbered.snapshot_id = s.snapshot_id;
UPDATE jobs j SET push_seq = COALESCE((SELECT max(seq) FROM snapshots s WHERE s.job_id = j.job_id), 0);
ALTER TABLE snapshots ALTER COLUMN cycle_id SET NOT NULL;
CREATE UNIQUE INDEX snapshots_cycle ON snapshots (cycle_id);
CREATE UNIQUE INDEX snapshots_order ON snapshots (job_id, seq);

-- A delta row removing an anchor carries only the anchor.
ALTER TABLE source_objects ALTER COLUMN object_type DROP NOT NULL;
ALTER TABLE source_objects ADD CONSTRAINT source_objects_typed CHECK (change = 'delete' OR object_type IS NOT NULL);

-- ---------------------------------------------------------------- stager
-- `cycles` now records only the stager's own step: staged (the actions are written), failed
-- while staging (the error kept), or superseded before staging (a newer full read came).
ALTER TABLE cycles
    ADD COLUMN seq bigint,
    ADD COLUMN delta boolean NOT NULL DEFAULT false,
    -- Pinned anchors this cycle's source shows back in the state their rejected action would
    -- have changed; the gate releases those pins when it decides the cycle.
    ADD COLUMN returned_pins text[] NOT NULL DEFAULT '{}',
    ADD COLUMN stage_started_at timestamptz,
    ADD COLUMN stage_millis bigint;
UPDATE cycles c SET seq = s.seq FROM snapshots s WHERE s.snapshot_id = c.snapshot_id;

-- ---------------------------------------------------------------- gate
-- The gate's decision on each staged cycle.
CREATE TABLE decisions (
    cycle_id      uuid PRIMARY KEY REFERENCES cycles (cycle_id),
    job_id        uuid NOT NULL REFERENCES jobs (job_id),
    verdict       text NOT NULL CHECK (verdict IN ('apply', 'quarantine')),
    quarantine_id uuid UNIQUE REFERENCES quarantines (quarantine_id),
    -- Who the apply is attributed to when it was within limits.
    actor         text NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz NOT NULL DEFAULT now(),
    millis        bigint NOT NULL DEFAULT 0,
    CHECK ((verdict = 'quarantine') = (quarantine_id IS NOT NULL))
);

-- Per-action decisions of a quarantine that differ from its overall state: anchors allowed
-- in a partial allow, anchors rejected while the rest stays held.
CREATE TABLE held_verdicts (
    action_id     uuid PRIMARY KEY REFERENCES staged_actions (action_id),
    quarantine_id uuid NOT NULL REFERENCES quarantines (quarantine_id),
    verdict       text NOT NULL CHECK (verdict IN ('allowed', 'rejected')),
    decided_by    text NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX held_verdicts_by_quarantine ON held_verdicts (quarantine_id);

ALTER TABLE quarantines ADD COLUMN closed_reason text;

-- Which change the pin blocks: it clears only when the source undoes it.
ALTER TABLE pins
    ADD COLUMN rejected_action text NOT NULL DEFAULT 'delete' CHECK (rejected_action IN ('delete', 'disable')),
    ADD COLUMN rejected_reason text NOT NULL DEFAULT 'removed_from_source';

-- Distinct approvers are distinct people, whatever role their token carries.
ALTER TABLE approvals ADD COLUMN principal_name text;
UPDATE approvals SET principal_name = CASE WHEN position(':' IN principal) > 0
                                           THEN substr(principal, position(':' IN principal) + 1)
                                           ELSE principal END;
ALTER TABLE approvals ALTER COLUMN principal_name SET NOT NULL;
ALTER TABLE approvals DROP CONSTRAINT approvals_pkey;
ALTER TABLE approvals ADD PRIMARY KEY (quarantine_id, principal_name, decision);

-- ---------------------------------------------------------------- retention
-- Retention applies decided cycles: one row per cycle, in the apply's own transaction.
CREATE TABLE applied_cycles (
    cycle_id   uuid PRIMARY KEY REFERENCES cycles (cycle_id),
    job_id     uuid NOT NULL REFERENCES jobs (job_id),
    applied_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NOT NULL DEFAULT now(),
    millis     bigint NOT NULL DEFAULT 0
);
CREATE INDEX applied_cycles_by_job ON applied_cycles (job_id, applied_at);

-- The change feed: every applied change of the target directory, in commit order. `batch`
-- numbers the writing transactions in the order they commit (feed_clock's row lock is held
-- from numbering to commit), so a reader resuming after batch N misses nothing and never
-- sees part of a transaction.
CREATE TABLE feed_clock (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    batch     bigint NOT NULL
);
INSERT INTO feed_clock (batch) VALUES (0);

CREATE TABLE directory_changes (
    batch              bigint NOT NULL,
    position           integer NOT NULL,
    job_id             uuid NOT NULL,
    object_id          uuid NOT NULL,
    anchor             text NOT NULL,
    object_type        text NOT NULL CHECK (object_type IN ('user', 'group')),
    change             text NOT NULL CHECK (change IN ('create', 'update', 'disable', 'enable',
                           'soft_delete', 'restore', 'purge')),
    changed_attributes text[] NOT NULL DEFAULT '{}',
    -- The object after the change.
    distinguished_name text NOT NULL DEFAULT '',
    attributes         jsonb NOT NULL DEFAULT '{}',
    enabled            boolean NOT NULL DEFAULT true,
    member_anchors     text[] NOT NULL DEFAULT '{}',
    cycle_id           uuid,
    at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch, position)
);
CREATE INDEX directory_changes_by_job ON directory_changes (job_id, batch);
CREATE INDEX directory_changes_by_time ON directory_changes (at);

-- ---------------------------------------------------------------- backfill
-- Cycles recorded before this migration: their decisions and applies become the new owners'
-- records; `cycles.state` keeps only the stager's part.
INSERT INTO decisions (cycle_id, job_id, verdict, quarantine_id, actor, decided_at)
SELECT c.cycle_id, c.job_id, CASE WHEN q.quarantine_id IS NULL THEN 'apply' ELSE 'quarantine' END,
       q.quarantine_id, 'service:gate (within protection limits)', c.updated_at
FROM cycles c LEFT JOIN quarantines q ON q.cycle_id = c.cycle_id
WHERE c.state IN ('applying', 'completed', 'quarantined', 'allowed', 'rejected')
   OR (c.state = 'superseded' AND q.quarantine_id IS NOT NULL);
INSERT INTO applied_cycles (cycle_id, job_id, applied_at, started_at)
SELECT cycle_id, job_id, COALESCE(finished_at, updated_at), COALESCE(finished_at, updated_at)
FROM cycles WHERE state = 'completed';
INSERT INTO held_verdicts (action_id, quarantine_id, verdict, decided_by)
SELECT a.action_id, q.quarantine_id, CASE WHEN a.status = 'rejected' THEN 'rejected' ELSE 'allowed' END,
       COALESCE(q.closed_by, 'migration')
FROM staged_actions a JOIN quarantines q ON q.cycle_id = a.cycle_id
WHERE q.state IN ('open', 'partially_allowed') AND a.status IN ('allowed', 'rejected')
  AND a.action IN ('delete', 'disable');
ALTER TABLE cycles DROP CONSTRAINT cycles_state_check;
DROP INDEX cycles_one_open_per_job;
UPDATE cycles SET state = 'staged' WHERE state NOT IN ('failed', 'superseded')
   OR (state = 'superseded' AND EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = cycles.cycle_id));
ALTER TABLE cycles ADD CONSTRAINT cycles_state_check CHECK (state IN ('staged', 'failed', 'superseded'));
ALTER TABLE cycles ALTER COLUMN seq SET NOT NULL;
CREATE INDEX cycles_by_job_seq ON cycles (job_id, seq DESC);

ALTER TABLE staged_actions DROP CONSTRAINT staged_actions_status_check;
UPDATE staged_actions SET status = 'staged' WHERE status <> 'skipped_pinned';
ALTER TABLE staged_actions ADD CONSTRAINT staged_actions_status_check CHECK (status IN ('staged', 'skipped_pinned'));
DROP INDEX staged_actions_applied;
ALTER TABLE staged_actions DROP COLUMN applied_at;
CREATE INDEX staged_actions_by_cycle_anchor ON staged_actions (cycle_id, anchor COLLATE "C");

-- Log queries by actor match `role:name` and the principal's name alike.
CREATE INDEX provisioning_log_by_actor_name ON provisioning_log
    ((CASE WHEN position(':' IN actor) > 0 THEN split_part(actor, ':', 2) ELSE actor END), log_id DESC);
CREATE INDEX provisioning_log_by_actor ON provisioning_log (actor, log_id DESC);

-- ---------------------------------------------------------------- derived state
-- Where each accepted push stands, from what each owner recorded.
CREATE VIEW cycle_states AS
SELECT s.cycle_id, s.job_id, s.snapshot_id, s.seq, (s.kind = 'delta') AS delta,
       s.object_count AS source_objects, s.received_at, s.load_started_at, s.load_millis,
       s.trace_parent,
       c.created_at AS staged_at, c.stage_started_at, c.stage_millis, c.error,
       d.verdict, d.quarantine_id, d.decided_at, d.started_at AS decide_started_at,
       d.millis AS decide_millis, q.state AS quarantine_state,
       ac.applied_at, ac.started_at AS apply_started_at, ac.millis AS apply_millis,
       CASE WHEN c.cycle_id IS NULL THEN 'queued'
            WHEN c.state = 'failed' THEN 'failed'
            WHEN c.state = 'superseded' THEN 'superseded'
            WHEN ac.cycle_id IS NOT NULL THEN 'completed'
            WHEN d.cycle_id IS NULL THEN 'evaluating'
            WHEN d.verdict = 'apply' THEN 'applying'
            WHEN q.state = 'open' THEN 'quarantined'
            WHEN q.state = 'superseded' THEN 'superseded'
            WHEN q.state = 'rejected' THEN 'rejected'
            ELSE 'allowed' END AS state,
       CASE WHEN ac.cycle_id IS NOT NULL THEN ac.applied_at
            WHEN c.state IN ('failed', 'superseded') THEN c.updated_at
            WHEN q.state = 'superseded' THEN q.closed_at END AS finished_at
FROM snapshots s
LEFT JOIN cycles c ON c.cycle_id = s.cycle_id
LEFT JOIN decisions d ON d.cycle_id = s.cycle_id
LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id
LEFT JOIN applied_cycles ac ON ac.cycle_id = s.cycle_id
WHERE s.seq IS NOT NULL;

-- Where each staged action stands.
CREATE VIEW action_states AS
SELECT a.action_id, a.cycle_id, a.job_id, a.anchor, a.object_type, a.object_id, a.action, a.reason,
       a.changed_attributes, a.display_name, d.quarantine_id,
       CASE WHEN a.status = 'skipped_pinned' THEN 'skipped_pinned'
            WHEN d.verdict = 'quarantine' AND a.action IN ('delete', 'disable') THEN
                CASE COALESCE(hv.verdict, CASE q.state WHEN 'open' THEN 'held'
                                                       WHEN 'allowed' THEN 'allowed'
                                                       WHEN 'superseded' THEN 'superseded'
                                                       ELSE 'rejected' END)
                     WHEN 'allowed' THEN CASE WHEN ac.cycle_id IS NULL THEN 'allowed' ELSE 'applied' END
                     WHEN 'held' THEN CASE WHEN q.state = 'superseded' THEN 'superseded' ELSE 'held' END
                     WHEN 'rejected' THEN 'rejected'
                     ELSE 'superseded' END
            WHEN q.state = 'superseded' THEN 'superseded'
            WHEN ac.cycle_id IS NOT NULL THEN 'applied'
            ELSE 'staged' END AS status,
       ac.applied_at
FROM staged_actions a
LEFT JOIN decisions d ON d.cycle_id = a.cycle_id
LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id
LEFT JOIN held_verdicts hv ON hv.action_id = a.action_id
LEFT JOIN applied_cycles ac ON ac.cycle_id = a.cycle_id;

-- ---------------------------------------------------------------- grants
DO $grants$
DECLARE
    service text;
BEGIN
    FOREACH service IN ARRAY ARRAY['ingest', 'stager', 'gate', 'notifier', 'retention', 'exporter'] LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', 'syncguard_' || service);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', 'syncguard_' || service);
        EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', 'syncguard_' || service);
        EXECUTE format('GRANT INSERT ON provisioning_log TO %I', 'syncguard_' || service);
    END LOOP;
END
$grants$;
GRANT INSERT, UPDATE, DELETE ON jobs, snapshots, source_objects, source_failures TO syncguard_ingest;
GRANT INSERT, UPDATE, DELETE ON cycles, staged_actions TO syncguard_stager;
GRANT INSERT, UPDATE, DELETE ON job_protection, protection_rules, decisions, quarantines, held_verdicts,
    approvals, pins TO syncguard_gate;
GRANT INSERT, UPDATE, DELETE ON notification_outbox, notification_attempts TO syncguard_notifier;
GRANT INSERT, UPDATE, DELETE ON directory_objects, directory_memberships, purged_objects, applied_cycles,
    feed_clock, directory_changes TO syncguard_retention;
