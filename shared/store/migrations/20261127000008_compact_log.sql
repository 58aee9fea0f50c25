-- The provisioning log's compact form for transitions of many actions at once.
--
-- A cycle logs each of its actions as it is staged, held, allowed or rejected, and applied:
-- one `provisioning_log` row per action and transition, each written into the log's heap and
-- its seven indexes. For a first load of 1,000,000 objects that was two million rows, and for
-- a decision on 10,000 held deletes 0.14 of its 0.2 s. A transition of 64 actions or more is
-- now recorded as `provisioning_log_sets` rows instead: one row per 256 actions (a chunk)
-- carrying what is common to them (job, cycle, quarantine, status, actor, detail, when) and,
-- in action order, each action's id, anchor and action (and the object id where the action's
-- own does not say it). Everything else an entry shows (object type, reason, changed
-- attributes) is the staged action's, which is never updated nor deleted.
--
-- The entries a chunk stands for are numbered from its `first_log_id` on, in the log's own
-- id space: the log's identity now steps by 1,024, so every id drawn (a plain row's or a
-- chunk's) owns the 1,024 numbers that start with it. Entries keep one order, newest first
-- by log id, whichever form recorded them; QueryProvisioningLogs reads both and the view
-- `provisioning_log_entries` shows them expanded, one row per entry, as before.
-- A transition of fewer than 64 actions (a delta's) is logged as plain rows, as before.

DO $restart$
DECLARE
    next_id bigint;
BEGIN
    SELECT greatest((SELECT COALESCE(max(log_id), 0) FROM provisioning_log),
                    (SELECT last_value FROM provisioning_log_log_id_seq))
    INTO next_id;
    next_id := (next_id / 1024 + 1) * 1024;
    EXECUTE format('ALTER TABLE provisioning_log ALTER COLUMN log_id SET INCREMENT BY 1024 RESTART WITH %s',
                   next_id);
END
$restart$;

CREATE TABLE provisioning_log_sets (
    -- The first entry's log id; the chunk's entries are numbered on from it, in action order.
    first_log_id   bigint PRIMARY KEY DEFAULT nextval('provisioning_log_log_id_seq'),
    entries        integer NOT NULL CHECK (entries BETWEEN 1 AND 1024),  -- 256 written
    at             timestamptz NOT NULL DEFAULT now(),
    job_id         uuid NOT NULL,
    cycle_id       uuid NOT NULL,
    quarantine_id  uuid,
    status         text NOT NULL CHECK (status IN ('staged', 'held', 'allowed', 'rejected', 'superseded', 'applied')),
    -- An entry's display action is this prefix and its action's name (Plan, Staged, Allow, ...).
    display_prefix text NOT NULL,
    actor          text NOT NULL,
    detail         text NOT NULL DEFAULT '',
    -- The smallest and largest anchor of the chunk (byte order): a query for one anchor
    -- opens only the chunks whose range holds it.
    anchor_first   text COLLATE "C" NOT NULL,
    anchor_last    text COLLATE "C" NOT NULL,
    -- The distinct actions of the chunk: a query for one display action skips the others.
    kinds          text[] NOT NULL,
    action_ids     uuid[] NOT NULL CHECK (cardinality(action_ids) = entries),
    anchors        text[] NOT NULL CHECK (cardinality(anchors) = entries),
    actions        text[] NOT NULL CHECK (cardinality(actions) = entries),
    -- NULL: each entry's object is its staged action's (an apply records the created ids).
    object_ids     uuid[] CHECK (object_ids IS NULL OR cardinality(object_ids) = entries)
);
CREATE INDEX provisioning_log_sets_by_job ON provisioning_log_sets (job_id, first_log_id DESC);
CREATE INDEX provisioning_log_sets_by_cycle ON provisioning_log_sets (cycle_id, first_log_id DESC);
-- A retried step never logs the same transition twice: `syncguard_log_actions` leaves out
-- actions already logged with the status in either form; this index backs it up.
CREATE UNIQUE INDEX provisioning_log_sets_once_per_transition ON provisioning_log_sets ((action_ids[1]), status);

CREATE TRIGGER provisioning_log_sets_append_only
    BEFORE UPDATE OR DELETE ON provisioning_log_sets
    FOR EACH ROW EXECUTE FUNCTION provisioning_log_is_append_only();


-- Logs one transition of staged actions: their ids with their anchors and actions, aligned
-- (and best in anchor byte order, so chunks cover narrow anchor ranges), and the object ids
-- aligned too or NULL for each action's own. Returns how many actions.
CREATE FUNCTION syncguard_log_actions(
    log_job uuid, log_cycle uuid, log_quarantine uuid, log_status text, log_prefix text,
    log_actor text, log_detail text,
    logged_action_ids uuid[], logged_anchors text[], logged_actions text[], logged_object_ids uuid[]
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    total integer := COALESCE(cardinality(logged_action_ids), 0);
BEGIN
    IF total = 0 THEN
        RETURN 0;
    END IF;
    -- A transition is logged once per action whichever form holds it. Only a cycle that
    -- already has entries of this status (a retried step, a quarantine decided in parts)
    -- needs its actions checked one by one.
    IF EXISTS (SELECT 1 FROM provisioning_log p WHERE p.cycle_id = log_cycle AND p.status = log_status)
       OR EXISTS (SELECT 1 FROM provisioning_log_sets s WHERE s.cycle_id = log_cycle AND s.status = log_status) THEN
        WITH chunked AS (
            SELECT DISTINCT unnest(s.action_ids) AS action_id FROM provisioning_log_sets s
            WHERE s.cycle_id = log_cycle AND s.status = log_status
        )
        SELECT array_agg(e.action_id ORDER BY e.ord), array_agg(e.anchor ORDER BY e.ord),
               array_agg(e.action ORDER BY e.ord),
               CASE WHEN logged_object_ids IS NULL THEN NULL ELSE array_agg(e.object_id ORDER BY e.ord) END
        INTO logged_action_ids, logged_anchors, logged_actions, logged_object_ids
        FROM unnest(logged_action_ids, logged_anchors, logged_actions, logged_object_ids)
             WITH ORDINALITY AS e (action_id, anchor, action, object_id, ord)
        LEFT JOIN chunked c ON c.action_id = e.action_id
        WHERE c.action_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM provisioning_log p
                          WHERE p.action_id = e.action_id AND p.status = log_status);
        total := COALESCE(cardinality(logged_action_ids), 0);
    END IF;
    IF total = 0 THEN
        RETURN 0;
    ELSIF total < 64 THEN
        INSERT INTO provisioning_log (job_id, cycle_id, action_id, quarantine_id, object_id, anchor, object_type,
            action, status, reason, display_action, changed_attributes, actor, detail)
        SELECT log_job, log_cycle, a.action_id, log_quarantine,
               CASE WHEN logged_object_ids IS NULL THEN a.object_id ELSE e.object_id END,
               a.anchor, a.object_type, a.action, log_status, a.reason, log_prefix || initcap(a.action),
               a.changed_attributes, log_actor, log_detail
        FROM unnest(logged_action_ids, logged_object_ids) WITH ORDINALITY AS e (action_id, object_id, ord)
        JOIN staged_actions a ON a.action_id = e.action_id
        ORDER BY e.ord
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO provisioning_log_sets (entries, job_id, cycle_id, quarantine_id, status, display_prefix,
            actor, detail, anchor_first, anchor_last, kinds, action_ids, anchors, actions, object_ids)
        SELECT count(*), log_job, log_cycle, log_quarantine, log_status, log_prefix, log_actor, log_detail,
               min(e.anchor COLLATE "C"), max(e.anchor COLLATE "C"),
               array_agg(DISTINCT e.action), array_agg(e.action_id ORDER BY e.ord),
               array_agg(e.anchor ORDER BY e.ord), array_agg(e.action ORDER BY e.ord),
               CASE WHEN logged_object_ids IS NULL THEN NULL ELSE array_agg(e.object_id ORDER BY e.ord) END
        FROM unnest(logged_action_ids, logged_anchors, logged_actions, logged_object_ids) WITH ORDINALITY AS e (action_id, anchor, action, object_id, ord)
        GROUP BY (e.ord - 1) / 256
        ORDER BY (e.ord - 1) / 256
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN total;
END
$$;

-- Every entry of the log, one row each, whichever form recorded it: for reading by hand
-- and for reports (QueryProvisioningLogs reads the two forms page by page instead).
CREATE VIEW provisioning_log_entries AS
SELECT log_id, at, job_id, cycle_id, action_id, quarantine_id, object_id, anchor, object_type, action, status,
       reason, display_action, changed_attributes, actor, detail
FROM provisioning_log
UNION ALL
SELECT s.first_log_id + e.ord - 1, s.at, s.job_id, s.cycle_id, e.action_id, s.quarantine_id,
       CASE WHEN s.object_ids IS NULL THEN a.object_id ELSE e.object_id END,
       e.anchor, a.object_type, e.action, s.status, a.reason, s.display_prefix || initcap(e.action),
       a.changed_attributes, s.actor, s.detail
FROM provisioning_log_sets s
CROSS JOIN LATERAL unnest(s.action_ids, s.anchors, s.actions, s.object_ids) WITH ORDINALITY AS e (action_id, anchor, action, object_id, ord)
JOIN staged_actions a ON a.action_id = e.action_id;
-- Every service appends to the log in either form and may read it.
DO $grants$
DECLARE
    service text;
BEGIN
    FOREACH service IN ARRAY ARRAY['ingest', 'stager', 'gate', 'notifier', 'retention', 'exporter'] LOOP
        EXECUTE format('GRANT SELECT, INSERT ON provisioning_log_sets TO %I', 'syncguard_' || service);
        EXECUTE format('GRANT SELECT ON provisioning_log_entries TO %I', 'syncguard_' || service);
    END LOOP;
END
$grants$;

-- One page of the compact form's entries, newest first: at most `wanted` entries with a log
-- id below `before`, matching every filter given (NULL: no filter), as QueryProvisioningLogs
-- filters plain rows. `actor_name` is the principal's name (the part after `role:`), and
-- `actor_full` the whole `role:name` when it was asked for. Chunks are read one at a time,
-- newest first, until the page is full, so a page costs the chunks it reads, not the log.
-- The entries' object type, reason and changed attributes are their staged actions', and
-- the object id too where `object_from_action` says so.
CREATE FUNCTION provisioning_log_set_page(
    want_job uuid, want_cycle uuid, want_anchor text, want_displays text[], want_status text,
    want_since timestamptz, want_until timestamptz, actor_name text, actor_full text,
    before bigint, wanted integer
) RETURNS TABLE (log_id bigint, at timestamptz, job_id uuid, cycle_id uuid, action_id uuid,
                 quarantine_id uuid, object_from_action boolean, object_id uuid, anchor text,
                 action text, status text, display_action text, actor text, detail text)
-- A page is small: joined to the staged actions, its rows are looked up by key.
LANGUAGE plpgsql STABLE ROWS 100 AS $$
DECLARE
    chunks refcursor;
    chunk provisioning_log_sets;
    chunk_action_ids uuid[];
    chunk_anchors text[];
    chunk_actions text[];
    chunk_object_ids uuid[];
    at_entry integer;
    got integer := 0;
BEGIN
    IF wanted <= 0 THEN
        RETURN;
    END IF;
    -- Chunks hold action entries only: an admin action, a status or a display action no
    -- chunk can carry selects none of them (without walking a large job's chunks to see).
    IF want_status IS NOT NULL
       AND want_status NOT IN ('staged', 'held', 'allowed', 'rejected', 'superseded', 'applied') THEN
        RETURN;
    END IF;
    IF want_displays IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM unnest(want_displays) d
        WHERE d ~ '^(Plan|Staged|Allow|Reject|Supersede)?(Create|Update|Disable|Enable|Delete|Restore)$') THEN
        RETURN;
    END IF;
    -- Each branch walks its own index newest first, and checks the filters on what a chunk
    -- shares within the scan (the entries' own are checked below). The filters are spelled
    -- out per branch: one query with optional drivers gets a cached generic plan that uses
    -- none of the indexes.
    IF want_cycle IS NOT NULL THEN
        OPEN chunks NO SCROLL FOR
            SELECT * FROM provisioning_log_sets s
            WHERE s.cycle_id = want_cycle AND (want_job IS NULL OR s.job_id = want_job)
              AND (before IS NULL OR s.first_log_id < before)
              AND (want_status IS NULL OR s.status = want_status)
              AND (want_since IS NULL OR s.at >= want_since)
              AND (want_until IS NULL OR s.at < want_until)
              AND (actor_full IS NULL OR s.actor = actor_full)
              AND (actor_name IS NULL OR (CASE WHEN position(':' IN s.actor) > 0
                                               THEN split_part(s.actor, ':', 2) ELSE s.actor END) = actor_name)
              AND (want_anchor IS NULL OR (want_anchor COLLATE "C" >= s.anchor_first
                                           AND want_anchor COLLATE "C" <= s.anchor_last))
              AND (want_displays IS NULL OR EXISTS (SELECT 1 FROM unnest(s.kinds) k
                                                    WHERE s.display_prefix || initcap(k) = ANY(want_displays)))
            ORDER BY s.first_log_id DESC;
    ELSIF want_job IS NOT NULL THEN
        OPEN chunks NO SCROLL FOR
            SELECT * FROM provisioning_log_sets s
            WHERE s.job_id = want_job
              AND (before IS NULL OR s.first_log_id < before)
              AND (want_status IS NULL OR s.status = want_status)
              AND (want_since IS NULL OR s.at >= want_since)
              AND (want_until IS NULL OR s.at < want_until)
              AND (actor_full IS NULL OR s.actor = actor_full)
              AND (actor_name IS NULL OR (CASE WHEN position(':' IN s.actor) > 0
                                               THEN split_part(s.actor, ':', 2) ELSE s.actor END) = actor_name)
              AND (want_anchor IS NULL OR (want_anchor COLLATE "C" >= s.anchor_first
                                           AND want_anchor COLLATE "C" <= s.anchor_last))
              AND (want_displays IS NULL OR EXISTS (SELECT 1 FROM unnest(s.kinds) k
                                                    WHERE s.display_prefix || initcap(k) = ANY(want_displays)))
            ORDER BY s.first_log_id DESC;
    ELSE
        OPEN chunks NO SCROLL FOR
            SELECT * FROM provisioning_log_sets s
            WHERE (before IS NULL OR s.first_log_id < before)
              AND (want_status IS NULL OR s.status = want_status)
              AND (want_since IS NULL OR s.at >= want_since)
              AND (want_until IS NULL OR s.at < want_until)
              AND (actor_full IS NULL OR s.actor = actor_full)
              AND (actor_name IS NULL OR (CASE WHEN position(':' IN s.actor) > 0
                                               THEN split_part(s.actor, ':', 2) ELSE s.actor END) = actor_name)
              AND (want_anchor IS NULL OR (want_anchor COLLATE "C" >= s.anchor_first
                                           AND want_anchor COLLATE "C" <= s.anchor_last))
              AND (want_displays IS NULL OR EXISTS (SELECT 1 FROM unnest(s.kinds) k
                                                    WHERE s.display_prefix || initcap(k) = ANY(want_displays)))
            ORDER BY s.first_log_id DESC;
    END IF;
    LOOP
        FETCH chunks INTO chunk;
        EXIT WHEN NOT FOUND;
        -- Assigned once, the arrays are read element by element without being unpacked again.
        chunk_action_ids := chunk.action_ids;
        chunk_anchors := chunk.anchors;
        chunk_actions := chunk.actions;
        chunk_object_ids := chunk.object_ids;
        at_entry := chunk.entries;
        IF before IS NOT NULL THEN
            at_entry := least(at_entry, before - chunk.first_log_id);
        END IF;
        WHILE at_entry >= 1 LOOP
            IF (want_anchor IS NULL OR chunk_anchors[at_entry] = want_anchor)
               AND (want_displays IS NULL
                    OR chunk.display_prefix || initcap(chunk_actions[at_entry]) = ANY(want_displays)) THEN
                log_id := chunk.first_log_id + at_entry - 1;
                at := chunk.at;
                job_id := chunk.job_id;
                cycle_id := chunk.cycle_id;
                action_id := chunk_action_ids[at_entry];
                quarantine_id := chunk.quarantine_id;
                object_from_action := chunk_object_ids IS NULL;
                object_id := chunk_object_ids[at_entry];
                anchor := chunk_anchors[at_entry];
                action := chunk_actions[at_entry];
                status := chunk.status;
                display_action := chunk.display_prefix || initcap(chunk_actions[at_entry]);
                actor := chunk.actor;
                detail := chunk.detail;
                RETURN NEXT;
                got := got + 1;
                EXIT WHEN got >= wanted;
            END IF;
            at_entry := at_entry - 1;
        END LOOP;
        EXIT WHEN got >= wanted;
    END LOOP;
    CLOSE chunks;
END
$$;
