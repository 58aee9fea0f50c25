-- The exporter now pages a bootstrap in the order of the (job, anchor) index, the database's
-- collation, instead of byte order (each page sorted all of the job's live objects). A
-- bootstrap in progress kept its cursor in byte order; where the two orders differ,
-- resuming from it could pass over objects, so those bootstraps start again from the first
-- anchor. Writes to a target are idempotent: an object written twice is written once.
UPDATE export_cursors SET bootstrap_after = '' WHERE bootstrap_after IS NOT NULL AND bootstrap_after <> '';
