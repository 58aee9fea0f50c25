-- Every log row is written into each of the log's indexes, and a first load writes two rows
-- per object: two fewer B-trees to keep.
-- * Time ranges: `at` only grows with `log_id`, so a BRIN summary finds a range's pages
--   (a few kilobytes instead of a B-tree as large as the table's keys).
-- * Actors: `role:name` is answered by the name index (`provisioning_log_by_actor_name`)
--   plus the full actor as a filter; a name has few roles.
DROP INDEX provisioning_log_by_time;
CREATE INDEX provisioning_log_by_time ON provisioning_log USING brin (at);
DROP INDEX provisioning_log_by_actor;
