-- A counter of changes to what every slot search reads whole: the technicians and the
-- settings (PostgreSQL). The SQLite twin is migrations/sqlite/0006_catalog_revision.sql.
-- Bumped by statement-level triggers, so every writer (any node, an import, a hand-made
-- UPDATE) moves it; each node keeps the parsed technicians in memory and re-reads them
-- only when the revision it sees differs from the one it parsed (operation_cache.rs).
-- The bump row-locks the counter until commit: writes of technicians and settings take
-- turns, which they are rare enough to afford; bookings never touch it.
CREATE TABLE catalog_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 1);

CREATE FUNCTION bump_catalog_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER technicians_changed AFTER INSERT OR UPDATE OR DELETE ON technicians
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_revision();
CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_revision();
