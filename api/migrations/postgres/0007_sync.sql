-- Mobile sync (issue 8), PostgreSQL. The SQLite twin is migrations/sqlite/0007_sync.sql:
-- same tables and columns; INTEGER there where BIGINT here, TEXT where TIMESTAMPTZ.
-- See docs/sync.md for the protocol these tables serve.

-- Who does a job now (the dispatcher's assignment, POST /v1/jobs/{id}/assign); the
-- job is in that technician's sync scope. NULL: nobody.
ALTER TABLE jobs ADD COLUMN assigned_technician TEXT;
CREATE INDEX jobs_assigned_technician ON jobs (assigned_technician);

-- A phone (one app installation), registered to the technician whose key first used it;
-- any other technician's key is refused. `last_mutation_id`: every mutation of this
-- device up to it was applied or rejected, in the same transaction that moved it.
CREATE TABLE sync_devices (
    client_id        TEXT PRIMARY KEY,
    technician_id    TEXT NOT NULL,
    last_mutation_id BIGINT NOT NULL CHECK (last_mutation_id >= 0),
    registered_at    TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX sync_devices_technician ON sync_devices (technician_id);

-- One row per technician scope: +1 (`UPDATE … RETURNING version`) by each writing
-- transaction that changed the scope, so versions follow commit order (the row lock
-- serialises writers of one scope).
CREATE TABLE sync_scopes (
    technician_id TEXT PRIMARY KEY,
    version       BIGINT NOT NULL CHECK (version >= 0)
);

-- What a technician's phones hold, key → JSON value, each with the scope version that
-- last wrote it. `value` NULL: deleted (a tombstone, so a diff can say `del`).
CREATE TABLE sync_entries (
    technician_id TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT,
    version       BIGINT NOT NULL,
    PRIMARY KEY (technician_id, key)
);
CREATE INDEX sync_entries_since ON sync_entries (technician_id, version);

-- The merge state of a job (despacho_mobile_sync::JobRecord as JSON): the dispatcher's
-- fields, everyone it was ever assigned to, the facts in server order and the flags.
CREATE TABLE sync_jobs (
    job_id     TEXT PRIMARY KEY REFERENCES jobs (id),
    record     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Technicians' facts, append-only; ids are made on the phone and unique across jobs.
-- `serial` and `action` repeat an equipment fact's fields for duplicate detection.
CREATE TABLE sync_facts (
    fact_id       TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    technician_id TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    mutation_id   BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    fact          TEXT NOT NULL,
    serial        TEXT,
    action        TEXT,
    device_at     BIGINT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (client_id, mutation_id)
);
CREATE INDEX sync_facts_job ON sync_facts (job_id, seq);
CREATE INDEX sync_facts_serial ON sync_facts (serial);

-- Mutations refused for good (they still advanced their device).
CREATE TABLE sync_rejections (
    client_id     TEXT NOT NULL,
    mutation_id   BIGINT NOT NULL,
    technician_id TEXT NOT NULL,
    name          TEXT NOT NULL,
    rejection     TEXT NOT NULL,
    rejected_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, mutation_id)
);

-- The dispatcher's queue of sync conflicts (despacho_mobile_sync::Flag as JSON): work on
-- a cancelled job, facts from a former technician, duplicate serials, wrong clocks.
CREATE TABLE sync_flags (
    id          TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    kind        TEXT NOT NULL,
    flag        TEXT NOT NULL,
    raised_at   TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    UNIQUE (job_id, flag)
);
CREATE INDEX sync_flags_open ON sync_flags (resolved_at, raised_at);
