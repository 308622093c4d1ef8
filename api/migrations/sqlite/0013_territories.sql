-- Named territories (issue 7): a dispatcher's area of the city with its technicians.
-- The PostgreSQL twin is migrations/postgres/0013_territories.sql (TIMESTAMPTZ there).
--
-- `area` is a GeoJSON Polygon or MultiPolygon ([lon, lat]); a job belongs to the first
-- territory (by id) whose area covers its place. A technician is a member of at most
-- one territory; a member without an own territory polygon works inside the area.
-- Deleting a technician or a territory removes the membership (plans are untouched).
CREATE TABLE territories (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    area       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE territory_members (
    technician_id TEXT PRIMARY KEY NOT NULL REFERENCES technicians (id) ON DELETE CASCADE,
    territory_id  TEXT NOT NULL REFERENCES territories (id) ON DELETE CASCADE
);

CREATE INDEX territory_members_territory ON territory_members (territory_id);

-- An optimisation run of one territory re-plans only its technicians and jobs.
ALTER TABLE plan_runs ADD COLUMN territory TEXT;
