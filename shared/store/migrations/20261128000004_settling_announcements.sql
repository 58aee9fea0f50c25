-- `syncguard_cycle_events` is heard only by callers waiting for their cycle to settle
-- (finished, held for people, or queued behind a held cycle). A one-object delta announced
-- four moves (the push, the staging, the decision and the apply), and each woke the
-- waiters to read the cycle again on the connections the next steps were waiting for:
-- eight reads of `cycle_states` per delta (2 ms of the database's time, statement log of
-- scripts/bench). A push, a staging and a decision to apply only hand the cycle to the next
-- owner, so they are no longer announced; every move that may settle a cycle still is (a
-- failure or supersession, a quarantine, a quarantine's close, an apply). A waiter still
-- looks on its own at growing pauses, so a lost announcement delays and never strands it.
CREATE OR REPLACE FUNCTION syncguard_announce_cycle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Separate statements: a row of one table has no field of the others.
    IF TG_TABLE_NAME = 'cycles' THEN
        IF NEW.state = 'staged' THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_NAME = 'decisions' THEN
        IF NEW.verdict = 'apply' THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify('syncguard_cycle_events', NEW.job_id::text);
    RETURN NULL;
END
$$;

DROP TRIGGER snapshots_announce ON snapshots;
