-- The compact log's chunks grouped again, as 20261127000008 wrote them.
--
-- 20261129000001 cut a transition's chunks as slices of its arrays. A slice of a text array
-- (the anchors, the actions) walks the array from its first element, so a transition of n
-- actions cost n^2/512 element steps: 5 ms more for 10,000 actions, but a first load of
-- 1,000,000 objects took 162 s instead of 39 s (scripts/bench 1000000), and one of 100,000
-- 5.7 s instead of 4.9 s. Unnesting once and grouping is O(n log n); this restores it, word
-- for word.
CREATE OR REPLACE FUNCTION syncguard_log_actions(
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
