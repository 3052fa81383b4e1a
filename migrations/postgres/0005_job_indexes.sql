-- Whole-table jobs (migrate, cleanup-orphans, migrate-prefix) read through indexes, never by
-- scanning text.
--
-- `portrait_file` is the last path segment of a character's portrait URL (no query string or
-- fragment): "which characters could show object K" becomes an index lookup on K's file name,
-- followed by an exact check in the application. Generated, so every writer (import, rollback,
-- prefix moves) keeps it right without knowing about it.
ALTER TABLE characters ADD COLUMN portrait_file TEXT GENERATED ALWAYS AS (
    regexp_replace(split_part(split_part(portrait_url, '#', 1), '?', 1), '^.*/', '')
) STORED;
CREATE INDEX characters_portrait_file ON characters (portrait_file);

-- Migration candidates (a URL with no stored object behind it), paged by id.
CREATE INDEX characters_external_portrait ON characters (id)
    WHERE portrait_id IS NULL AND portrait_url IS NOT NULL;

-- The same bytes are stored once: an upload looks for a portrait with its content hash.
CREATE INDEX portraits_sha256 ON portraits (sha256);
-- /admin stats sums stored bytes from this index instead of reading every row.
CREATE INDEX portraits_size_bytes ON portraits (size_bytes);
-- Finding runs left `running` by a killed process.
CREATE INDEX migration_runs_status ON migration_runs (status);
-- Rolling a run back reads its items a page at a time, in id order.
CREATE INDEX migration_items_run_page ON migration_items (run_id, status, id);
