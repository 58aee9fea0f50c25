-- Where a staged action stands, from what its cycle's owners recorded: its own stored status
-- and kind, the cycle's verdict, the action's own verdict in a quarantine (allowed or rejected
-- by anchor), the quarantine's state and whether the cycle was applied. One definition for the
-- action_states view and for a quarantine's page, which looks the cycle's facts up once
-- instead of once per row. A simple immutable SQL function: the planner inlines it.
CREATE FUNCTION action_state(stored_status text, action text, verdict text, held_verdict text,
                             quarantine_state text, applied boolean)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN stored_status = 'skipped_pinned' THEN 'skipped_pinned'
            WHEN verdict = 'quarantine' AND action IN ('delete', 'disable') THEN
                CASE COALESCE(held_verdict, CASE quarantine_state WHEN 'open' THEN 'held'
                                                                  WHEN 'allowed' THEN 'allowed'
                                                                  WHEN 'superseded' THEN 'superseded'
                                                                  ELSE 'rejected' END)
                     WHEN 'allowed' THEN CASE WHEN applied THEN 'applied' ELSE 'allowed' END
                     WHEN 'held' THEN CASE WHEN quarantine_state = 'superseded' THEN 'superseded' ELSE 'held' END
                     WHEN 'rejected' THEN 'rejected'
                     ELSE 'superseded' END
            WHEN quarantine_state = 'superseded' THEN 'superseded'
            WHEN applied THEN 'applied'
            ELSE 'staged' END
$$;

CREATE OR REPLACE VIEW action_states AS
SELECT a.action_id, a.cycle_id, a.job_id, a.anchor, a.object_type, a.object_id, a.action, a.reason,
       a.changed_attributes, a.display_name, d.quarantine_id,
       action_state(a.status, a.action, d.verdict, hv.verdict, q.state, ac.cycle_id IS NOT NULL) AS status,
       ac.applied_at
FROM staged_actions a
LEFT JOIN decisions d ON d.cycle_id = a.cycle_id
LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id
LEFT JOIN held_verdicts hv ON hv.action_id = a.action_id
LEFT JOIN applied_cycles ac ON ac.cycle_id = a.cycle_id;

-- One page of a quarantine's held actions (its cycle's deletes and disables, pinned ones left
-- out), in anchor order: at most `wanted` rows after `after_anchor` (NULL: from the start)
-- matching `pattern` (an ILIKE pattern over anchor, display name and reason; NULL: all).
-- An applied delete carries its object's purge deadline while the object is soft-deleted.
--
-- GetQuarantine reads the quarantine and this page in one statement: a function called from
-- that statement shares its snapshot (STABLE) and costs no round trip of its own. The
-- cycle's verdict, quarantine state and applied mark are looked up once (through the view,
-- a page probed them for each of its rows). The settings are the page's own, not the
-- caller's:
-- * the page walks staged_actions_destructive in anchor order and stops at `wanted`. Right
--   after staging the statistics still say a cycle has a few actions, and the planner chose
--   a bitmap scan of all 10,000 held actions plus a sort (22 ms a page, auto_explain);
-- * its plans are cached generic plans: left to choose, Postgres planned the page again on
--   every call (the optional search makes a custom plan look cheaper): 1.2-1.5 ms of
--   planning for 0.5 ms of work. The generic plan walks the same index.
-- The cursor is always an index condition (written `after_anchor IS NULL OR anchor > ...`, a
-- generic plan walks every earlier page again): in byte order the first text after X is
-- X || chr(1) (text holds no NUL), and every text is >= ''.
CREATE FUNCTION quarantine_held_page(held_cycle uuid, after_anchor text, wanted bigint, pattern text)
RETURNS TABLE (action_id uuid, cycle_id uuid, job_id uuid, anchor text, object_type text, action text,
               reason text, status text, changed_attributes text[], display_name text,
               purge_after timestamptz)
LANGUAGE plpgsql STABLE ROWS 50
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    cycle_verdict text;
    cycle_quarantine_state text;
    cycle_applied boolean;
BEGIN
    SELECT d.verdict, q.state INTO cycle_verdict, cycle_quarantine_state
    FROM decisions d LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id
    WHERE d.cycle_id = held_cycle;
    cycle_applied := EXISTS (SELECT 1 FROM applied_cycles ac WHERE ac.cycle_id = held_cycle);
    RETURN QUERY
        SELECT p.action_id, p.cycle_id, p.job_id, p.anchor, p.object_type, p.action, p.reason, p.status,
               p.changed_attributes, p.display_name,
               CASE WHEN p.status = 'applied' AND p.action = 'delete' THEN
                    (SELECT o.purge_after FROM directory_objects o
                     WHERE o.object_id = p.object_id AND o.deleted_at IS NOT NULL) END
        FROM (SELECT s.action_id, s.cycle_id, s.job_id, s.anchor, s.object_type, s.object_id, s.action,
                     s.reason, s.changed_attributes, s.display_name,
                     action_state(s.status, s.action, cycle_verdict, hv.verdict,
                                  cycle_quarantine_state, cycle_applied) AS status
              FROM staged_actions s LEFT JOIN held_verdicts hv ON hv.action_id = s.action_id
              WHERE s.cycle_id = held_cycle AND s.action IN ('delete', 'disable')
                AND s.status <> 'skipped_pinned'
                AND s.anchor COLLATE "C" >= coalesce(after_anchor || chr(1), '')
                AND (pattern IS NULL OR s.anchor ILIKE pattern OR s.display_name ILIKE pattern
                     OR replace(s.reason, '_', ' ') ILIKE pattern)
              ORDER BY s.anchor COLLATE "C" LIMIT wanted) p
        ORDER BY p.anchor COLLATE "C";
END
$$;
