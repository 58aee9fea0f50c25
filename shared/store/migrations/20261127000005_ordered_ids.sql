-- Ids written in bulk (staged actions, target objects) start with the time in milliseconds
-- (the UUID version 7 layout), so a cycle's new ids land side by side at the right edge of
-- every index keyed on them instead of on random pages all over it: random ids touched a
-- different leaf page per row in `staged_actions_pkey`, `directory_objects_pkey` and the
-- log's `(action_id, status)` index, each page written whole to the WAL after a checkpoint.
CREATE FUNCTION syncguard_ordered_uuid() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
