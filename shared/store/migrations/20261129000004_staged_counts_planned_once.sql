-- A cycle's staged actions counted by kind, type and status: the gate counts the kinds its
-- rules count for every decision, and the stager and the notifier count a cycle for its
-- view. As plain statements these were planned again at every call: for a cycle newer than
-- the statistics the custom plan always looked cheaper than the generic one (a fresh
-- cycle's id is estimated at a few rows, "some cycle" at hundreds), so each count paid
-- 0.09-0.13 ms of planning, about 0.3 ms of every one-object delta (pg_stat_statements over
-- scripts/bench 2000). The plan is the same index scan whatever the cycle; PL/pgSQL keeps
-- it for the session, and the function's own plan_cache_mode keeps it generic. Only the
-- kinds asked for are read (an index condition): a first load's million creates are not
-- read to learn that it deletes nothing.
CREATE FUNCTION syncguard_staged_counts(counted_cycle uuid, counted_kinds text[])
RETURNS TABLE (counted_action text, counted_type text, counted_status text, actions bigint)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
        SELECT s.action, s.object_type, s.status, count(*)
        FROM staged_actions s
        WHERE s.cycle_id = counted_cycle AND s.action = ANY(counted_kinds)
        GROUP BY s.action, s.object_type, s.status;
END
$$;
