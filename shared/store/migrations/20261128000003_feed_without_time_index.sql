-- Every applied change writes a row into the feed; its index on `at` was read by nothing
-- (pruning walks whole batches by number, readers follow (batch, position) or a job's
-- batches) and cost each of the 100,000 rows of a first load an index entry.
DROP INDEX IF EXISTS directory_changes_by_time;
