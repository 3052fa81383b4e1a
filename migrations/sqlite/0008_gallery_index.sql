-- The gallery pages through a server's characters in name order (LIMIT 1 OFFSET n).
CREATE INDEX IF NOT EXISTS characters_gallery ON characters (guild_id, name_key, id);
