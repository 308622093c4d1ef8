-- Background optimisation runs (PostgreSQL). The SQLite twin is
-- migrations/sqlite/0010_plan_runs.sql: same table, columns and index; timestamps are
-- TIMESTAMPTZ here.
--
-- `POST /v1/plans/{date}/optimize` queues a run; any node's run worker claims it by
-- lease (`lease_owner` = a token new per claim, `lease_until`), solves, writes progress
-- (which also renews the lease) and stores the result as a new draft plan version
-- (`plan_id`, `plan_version`). A run whose lease expired (its node died) is claimed
-- again; `attempts` counts claims so a run that kills its workers ends `failed`.
-- `cancel_requested` is how a cancel reaches the worker that runs it.
CREATE TABLE plan_runs (
    id               TEXT PRIMARY KEY NOT NULL,
    date             TEXT NOT NULL,
    seconds          INTEGER NOT NULL CHECK (seconds >= 1),
    seed             BIGINT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    elapsed_ms       BIGINT,
    iterations       BIGINT,
    best_cost        DOUBLE PRECISION,
    jobs_planned     INTEGER,
    plan_id          TEXT REFERENCES plans (id),
    plan_version     INTEGER,
    error            TEXT,
    actor_key        TEXT NOT NULL,
    actor_name       TEXT NOT NULL,
    actor_role       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);

-- Claiming: queued runs oldest first, and running ones whose lease has passed.
CREATE INDEX plan_runs_claim ON plan_runs (state, created_at);
