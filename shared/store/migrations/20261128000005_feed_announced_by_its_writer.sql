-- The feed's readers are told of new changes by the transaction that writes them (retention
-- numbers its batch and notifies `syncguard_feed` with each job id in one statement), not by
-- a statement trigger: the trigger read the inserted rows from a transition table, which
-- Postgres fills with a copy of every inserted row, a first load's whole objects, only for
-- the trigger to find the job ids in them.
DROP TRIGGER directory_changes_announce ON directory_changes;
DROP FUNCTION syncguard_announce_changes();
