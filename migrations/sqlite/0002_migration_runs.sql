-- One row per migration run (CDN → bucket), with its counts; dry runs are recorded too.
CREATE TABLE migration_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dry_run      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    started_by   TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    selected     INTEGER NOT NULL DEFAULT 0,
    migrated     INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0
);

-- What a run did to each character: written in the same transaction as the character's new
-- portrait, so a rollback restores exactly the legacy URLs the run replaced.
CREATE TABLE migration_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        INTEGER NOT NULL REFERENCES migration_runs (id),
    character_id  INTEGER NOT NULL,
    legacy_url    TEXT    NOT NULL,
    new_url       TEXT,
    status        TEXT    NOT NULL,
    reason        TEXT,
    created_at    TEXT    NOT NULL
);
CREATE INDEX migration_items_run ON migration_items (run_id, status);
