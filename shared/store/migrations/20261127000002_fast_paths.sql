-- Fast paths: waiters learn that a cycle moved the moment it commits instead of polling, a
-- quarantine keeps the counts it was decided on, and held actions are read in anchor order
-- from their own index.

-- Every change of a cycle's derived state (a push recorded, staged or superseded, decided,
-- a quarantine closed, applied) notifies `syncguard_cycle_events` with the job id; the
-- notification is delivered when the transaction commits, and not at all if it rolls back.
CREATE FUNCTION syncguard_announce_cycle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('syncguard_cycle_events', NEW.job_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER snapshots_announce AFTER INSERT ON snapshots
    FOR EACH ROW EXECUTE FUNCTION syncguard_announce_cycle();
CREATE TRIGGER cycles_announce AFTER INSERT OR UPDATE OF state ON cycles
    FOR EACH ROW EXECUTE FUNCTION syncguard_announce_cycle();
CREATE TRIGGER decisions_announce AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION syncguard_announce_cycle();
CREATE TRIGGER quarantines_announce AFTER UPDATE OF state ON quarantines
    FOR EACH ROW EXECUTE FUNCTION syncguard_announce_cycle();
CREATE TRIGGER applied_cycles_announce AFTER INSERT ON applied_cycles
    FOR EACH ROW EXECUTE FUNCTION syncguard_announce_cycle();

-- The counts a quarantine was decided on (action, object type, count), shown by
-- GetQuarantine without counting the cycle again.
ALTER TABLE quarantines ADD COLUMN counts jsonb;

-- Held actions in anchor order, without walking a cycle's creates and updates.
CREATE INDEX staged_actions_destructive ON staged_actions (cycle_id, anchor COLLATE "C")
    WHERE action IN ('delete', 'disable');
