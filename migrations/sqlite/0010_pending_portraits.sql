-- Approval queue (issue 12): uploads waiting for a moderator in servers that require approval.
-- The portrait row and object are stored like any other, but no character shows them until a
-- moderator approves. One per character: a second upload while one waits replaces it (a new
-- row, so the old message's buttons cannot approve an image nobody looked at). Deleting the
-- character drops its pending upload; the portrait row left unused is then an orphan like any
-- other, deleted by orphan cleanup.
CREATE TABLE pending_portraits (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER NOT NULL,
    character_id    INTEGER NOT NULL UNIQUE REFERENCES characters (id) ON DELETE CASCADE,
    portrait_id     INTEGER NOT NULL REFERENCES portraits (id),
    uploader_id     INTEGER NOT NULL,
    -- The message with the Approve / Reject buttons, once posted.
    mod_channel_id  INTEGER,
    mod_message_id  INTEGER,
    created_at      TEXT    NOT NULL
);
-- `/admin queue`: a server's waiting uploads, oldest first.
CREATE INDEX pending_portraits_queue ON pending_portraits (guild_id, created_at, id);
-- "Is this portrait row still needed?" when a portrait is released.
CREATE INDEX pending_portraits_portrait ON pending_portraits (portrait_id);
