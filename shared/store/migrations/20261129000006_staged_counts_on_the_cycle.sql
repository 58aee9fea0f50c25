-- A cycle's staged actions counted once, as they are staged, and kept on the cycle: the
-- stager, the gate and the notifier each counted them again from `staged_actions` (three
-- counts per one-object delta, each planned anew for its cycle id: 0.15-0.17 ms apiece in
-- pg_stat_statements over scripts/bench 2000). Staged actions are never updated nor
-- deleted, so the counts stay true. Each element: {"action", "object_type", "status",
-- "count"}; '[]' for a cycle that staged nothing (superseded, failed, or not staged yet).
ALTER TABLE cycles ADD COLUMN staged_counts jsonb NOT NULL DEFAULT '[]';

UPDATE cycles c SET staged_counts = g.counts
FROM (SELECT cycle_id,
             jsonb_agg(jsonb_build_object('action', action, 'object_type', object_type,
                                          'status', status, 'count', n)
                       ORDER BY action, object_type, status) AS counts
      FROM (SELECT cycle_id, action, object_type, status, count(*) AS n
            FROM staged_actions GROUP BY cycle_id, action, object_type, status) grouped
      GROUP BY cycle_id) g
WHERE g.cycle_id = c.cycle_id;
