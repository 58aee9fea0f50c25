-- Soft-deleted objects are listed most recently deleted first.
CREATE INDEX directory_objects_deleted_order ON directory_objects (job_id, deleted_at DESC, object_id DESC)
    WHERE deleted_at IS NOT NULL;
