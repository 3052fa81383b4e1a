-- A player's portrait history is found through their characters (the characters' unique key
-- starts with guild and owner, and portrait_history_character finds each one's rows) rather
-- than through an index of its own on (guild_id, owner_id). That index was kept in owner order
-- while its rows arrive in time order, so every batch of an import rewrote a page per player:
-- at a million characters it was a tenth of the import's time.
--
-- The history of a deleted character stays readable, so whose character it was is kept here
-- when a character is deleted (and forgotten with its history on a privacy request).
CREATE TABLE deleted_characters (
    character_id  BIGINT PRIMARY KEY,
    guild_id      BIGINT NOT NULL,
    owner_id      BIGINT NOT NULL,
    deleted_at    TEXT    NOT NULL
);
CREATE INDEX deleted_characters_owner ON deleted_characters (guild_id, owner_id);

INSERT INTO deleted_characters (character_id, guild_id, owner_id, deleted_at)
SELECT h.character_id, MIN(h.guild_id), MIN(h.owner_id), MAX(h.created_at)
FROM portrait_history h
WHERE NOT EXISTS (SELECT 1 FROM characters c WHERE c.id = h.character_id)
GROUP BY h.character_id;

DROP INDEX portrait_history_owner;
-- A whole server's history (a server's privacy request). Rows arrive in id order, so this
-- index only ever grows at the end of each server's range.
CREATE INDEX portrait_history_guild ON portrait_history (guild_id);
