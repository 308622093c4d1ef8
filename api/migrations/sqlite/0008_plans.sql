-- Dispatcher plans (SQLite). The PostgreSQL twin is migrations/postgres/0008_plans.sql:
-- same tables, columns and indexes; timestamps are TEXT here (RFC 3339, UTC).
--
-- A plan is one version of one day's routes. Versions are never edited: an
-- optimisation or a manual change writes a new `draft` version; publishing marks the
-- latest version `published` and the earlier published one `superseded`. The day's
-- plan is its highest version. `document` is the solver's evaluation of the routes
-- (the plan JSON of `despacho schema plan`: times, travel, breaks, unassigned jobs
-- with reasons, KPIs); `violations` what the checker found in it (JSON array, empty
-- when feasible).
CREATE TABLE plans (
    id           TEXT PRIMARY KEY NOT NULL,
    date         TEXT NOT NULL,
    territory    TEXT,
    version      INTEGER NOT NULL CHECK (version >= 1),
    state        TEXT NOT NULL CHECK (state IN ('draft', 'published', 'superseded')),
    origin       TEXT NOT NULL CHECK (origin IN ('optimize', 'change')),
    document     TEXT NOT NULL,
    violations   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    UNIQUE (date, version)
);

-- The routes of a plan: one row per visit, in order per technician. A locked visit
-- stays with its technician, in its order, when the day is optimised again.
CREATE TABLE plan_stops (
    plan_id       TEXT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    technician_id TEXT NOT NULL,
    position      INTEGER NOT NULL CHECK (position >= 0),
    job_id        TEXT NOT NULL,
    planned_start TEXT NOT NULL,
    planned_end   TEXT NOT NULL,
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (plan_id, job_id),
    UNIQUE (plan_id, technician_id, position)
);

-- Who did what to a day's plan, and when. `details` is JSON (the change, its
-- feasibility and delta; the optimisation's budget and result).
CREATE TABLE plan_audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    date       TEXT NOT NULL,
    plan_id    TEXT REFERENCES plans (id),
    version    INTEGER,
    actor_key  TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action     TEXT NOT NULL,
    at         TEXT NOT NULL,
    details    TEXT NOT NULL
);

CREATE INDEX plan_audit_date ON plan_audit (date, seq);
