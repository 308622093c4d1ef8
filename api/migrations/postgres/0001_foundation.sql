-- Despacho's foundation schema (PostgreSQL). The SQLite twin is
-- migrations/sqlite/0001_foundation.sql: same tables, columns and indexes; only the
-- column types differ (TIMESTAMPTZ and DOUBLE PRECISION here).
--
-- JSON documents (`data`, `settings.value`) are stored as text exactly as the service
-- serialised them; columns next to them repeat the few fields that are queried.

-- Operation-wide settings: `time_zone` (a JSON string) and `travel` (TravelOptions JSON).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- A technician: `data` is the JSON of despacho_solver::field::input::Technician
-- (skills with levels, home, shifts, costs, van capacity, max jobs per day).
CREATE TABLE technicians (
    id         TEXT PRIMARY KEY,
    name       TEXT,
    data       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- API keys: only the SHA-256 of the secret is kept. No foreign key to technicians, so
-- deleting a technician does not silently delete (or block on) their keys.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('chatbot', 'dispatcher', 'technician', 'admin')),
    technician_id TEXT,
    key_prefix    TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    CHECK ((role = 'technician') = (technician_id IS NOT NULL))
);

CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    phone      TEXT,
    email      TEXT,
    lat        DOUBLE PRECISION NOT NULL,
    lon        DOUBLE PRECISION NOT NULL,
    address    TEXT,
    time_zone  TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

-- A job: `data` is the JSON of despacho_solver::field::input::JobInput. `kind` and
-- `pinned_technician` repeat fields of it for filtering. `status` is free text on
-- purpose (values are defined by the service, so new ones need no constraint change).
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    customer_id       TEXT REFERENCES customers (id),
    kind              TEXT NOT NULL,
    pinned_technician TEXT,
    status            TEXT NOT NULL,
    data              TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX jobs_pinned_technician ON jobs (pinned_technician);
CREATE INDEX jobs_customer_id ON jobs (customer_id);
CREATE INDEX jobs_status ON jobs (status);
