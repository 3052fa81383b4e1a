-- The orphan cleanup asks, for each listed object, only for its portrait row's id and whether a
-- character uses it. With the id beside the key in one index that is an index-only scan: in
-- bucket order the portraits' rows (in id order) would otherwise be read at random, one page per
-- key once the table outgrows shared_buffers. SQLite needs no such index: its index on
-- storage_key already holds the row id.
CREATE INDEX portraits_storage_key_id ON portraits (storage_key) INCLUDE (id);
