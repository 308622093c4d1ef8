-- A counter of changes to what every slot search reads whole: the technicians and the
-- settings (SQLite). The PostgreSQL twin is migrations/postgres/0006_catalog_revision.sql.
-- Bumped by triggers, so every writer (this service, an import, a hand-made UPDATE)
-- moves it; the service keeps the parsed technicians in memory and re-reads them only
-- when the revision it sees differs from the one it parsed (operation_cache.rs).
CREATE TABLE catalog_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 1);

CREATE TRIGGER technicians_inserted AFTER INSERT ON technicians
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER technicians_updated AFTER UPDATE ON technicians
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER technicians_deleted AFTER DELETE ON technicians
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER settings_inserted AFTER INSERT ON settings
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER settings_updated AFTER UPDATE ON settings
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER settings_deleted AFTER DELETE ON settings
BEGIN UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1; END;
