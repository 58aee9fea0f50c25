-- QueryProvisioningLogs now expands the compact log's chunks itself (the stager's
-- log_chunks module): the PL/pgSQL page function cost 0.45-0.5 ms of server time for a
-- page of 50 entries, fetching the chunks' arrays 0.1 ms. The chunks, their meaning and the
-- view provisioning_log_entries are unchanged.
DROP FUNCTION provisioning_log_set_page(uuid, uuid, text, text[], text, timestamptz, timestamptz,
                                        text, text, bigint, integer);
