-- At most one migration runs at a time across every machine: the holder renews its lease while
-- it works; a lease that is not renewed expires, so a crashed machine cannot block forever.
CREATE TABLE migration_leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
