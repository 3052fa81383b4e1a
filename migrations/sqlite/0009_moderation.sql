-- Moderation (issue 12): per-server settings, the history of every portrait change, and the
-- per-server block-list of perceptual hashes.

-- A server's own settings; a NULL column means "use the environment's default".
CREATE TABLE guild_settings (
    guild_id                INTEGER PRIMARY KEY,
    mod_channel_id          INTEGER,
    approval_required       INTEGER,
    max_characters          INTEGER,
    uploads_per_10_minutes  INTEGER,
    updated_by              INTEGER,
    updated_at              TEXT    NOT NULL
);

-- Every change of a character's portrait. No foreign key: the history of a deleted character
-- stays readable (its name is copied here).
CREATE TABLE portrait_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER NOT NULL,
    owner_id        INTEGER NOT NULL,
    character_id    INTEGER NOT NULL,
    character_name  TEXT    NOT NULL,
    actor_kind      TEXT    NOT NULL,
    actor_id        INTEGER,
    action          TEXT    NOT NULL,
    portrait_url    TEXT,
    reason          TEXT,
    created_at      TEXT    NOT NULL
);
CREATE INDEX portrait_history_character ON portrait_history (character_id, id);
CREATE INDEX portrait_history_owner ON portrait_history (guild_id, owner_id);

-- Images a server's moderators removed or rejected, remembered by perceptual hash.
CREATE TABLE blocked_images (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER NOT NULL,
    phash           TEXT    NOT NULL,
    character_name  TEXT,
    reason          TEXT,
    blocked_by      INTEGER,
    created_at      TEXT    NOT NULL
);
CREATE INDEX blocked_images_guild ON blocked_images (guild_id);
