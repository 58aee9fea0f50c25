-- Whether a cycle already has log entries of a status, in either form: asked before a large
-- transition is written straight from its rows (a fresh one, nearly always, has none).
-- The services plan their small deltas' statements generically, and a generic plan answered
-- this question about provisioning_log_sets by reading the whole table: "some cycle" is
-- estimated at dozens of chunks, so a scan expected to stop at the first looked cheaper than
-- the index, and for a fresh transition it never stops (0.76 ms with 1,648 chunks, growing
-- with the log; a one-object delta's apply asked it every time, inside the function below).
-- By key only, whatever the plan cache holds. PL/pgSQL rather than SQL: a SQL function that
-- cannot be inlined (its SET prevents that) plans its statement at every call (0.1-0.2 ms);
-- PL/pgSQL keeps the plan for the session.
CREATE FUNCTION syncguard_transition_logged(logged_cycle uuid, logged_status text) RETURNS boolean
LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM provisioning_log p WHERE p.cycle_id = logged_cycle AND p.status = logged_status)
        OR EXISTS (SELECT 1 FROM provisioning_log_sets s WHERE s.cycle_id = logged_cycle AND s.status = logged_status);
END
$$;

-- syncguard_log_actions asks the same question of both tables before every transition, and
-- reads the chunks a retried step or a partial decision already logged: by key too. Its
-- other statements read from its arguments and by primary key.
ALTER FUNCTION syncguard_log_actions(uuid, uuid, uuid, text, text, text, text, uuid[], text[], text[], uuid[])
    SET enable_seqscan = off;
