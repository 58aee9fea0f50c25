-- The members of a group are read by (job, group) from the primary key; the groups of a
-- member by (job, member) from this index. Led by the job, this index also answered "every
-- membership of the job", and for a job the statistics had not seen yet (estimated at one
-- row) the planner rated both indexes alike and took this narrower one for the group
-- lookups too: the change feed of a second job's 50,000-object first load scanned all 10,000
-- of the job's memberships for each of its 500 groups (677 ms against 227 ms for the first
-- job, auto_explain in scripts/bench after an ANALYZE). Led by the member, it only answers
-- lookups that name the member, so a group lookup can only take the primary key.
DROP INDEX directory_memberships_by_member;
CREATE INDEX directory_memberships_by_member ON directory_memberships (member_anchor, job_id);
