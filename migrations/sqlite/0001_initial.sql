-- Stored portrait objects: one row per object in the bucket (keys are content-addressed,
-- so the same image uploaded twice under one name is one row).
CREATE TABLE portraits (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    storage_key   TEXT    NOT NULL UNIQUE,
    public_url    TEXT    NOT NULL,
    sha256        TEXT    NOT NULL,
    size_bytes    INTEGER NOT NULL,
    content_type  TEXT    NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    uploader_id   INTEGER NOT NULL,
    source        TEXT    NOT NULL,
    legacy_url    TEXT,
    created_at    TEXT    NOT NULL
);

-- Player characters. portrait_url is what embeds show: our stored object's URL, a legacy
-- external URL awaiting migration, or NULL for the default portrait.
CREATE TABLE characters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id      INTEGER NOT NULL,
    owner_id      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL,
    class         TEXT,
    bio           TEXT,
    portrait_id   INTEGER REFERENCES portraits (id),
    portrait_url  TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    UNIQUE (guild_id, owner_id, name_key)
);
CREATE INDEX characters_portrait_id ON characters (portrait_id);

-- Every time a player got the default portrait because storage or the network failed.
CREATE TABLE portrait_fallbacks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id      INTEGER NOT NULL,
    owner_id      INTEGER NOT NULL,
    character_id  INTEGER,
    error_kind    TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);
