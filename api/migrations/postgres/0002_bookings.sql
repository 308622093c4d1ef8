-- Bookings (PostgreSQL). The SQLite twin is migrations/sqlite/0002_bookings.sql: same
-- tables, columns and indexes; timestamps are TIMESTAMPTZ here, dates DATE.

-- A promised visit. `job` is the JSON of despacho_solver::field::input::JobInput whose
-- single window is the promised one; `token` is the customer's unguessable reference.
-- A `held` booking counts against capacity while `expires_at` is in the future; an
-- expired hold is ignored by every query (no sweeper).
CREATE TABLE bookings (
    id               TEXT PRIMARY KEY,
    token            TEXT NOT NULL UNIQUE,
    customer_id      TEXT REFERENCES customers (id),
    job              TEXT NOT NULL,
    technician_id    TEXT NOT NULL,
    date             DATE NOT NULL,
    window_start     TIMESTAMPTZ NOT NULL,
    window_end       TIMESTAMPTZ NOT NULL,
    duration_minutes INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled')),
    expires_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'held') = (expires_at IS NOT NULL))
);

CREATE INDEX bookings_technician_date ON bookings (technician_id, date);
CREATE INDEX bookings_date ON bookings (date);

-- Every change of a booking, in order.
CREATE TABLE booking_history (
    booking_id TEXT NOT NULL REFERENCES bookings (id),
    at         TIMESTAMPTZ NOT NULL,
    action     TEXT NOT NULL,
    details    TEXT NOT NULL
);

CREATE INDEX booking_history_booking ON booking_history (booking_id, at);

-- One row per technician-day that was ever booked: writers of that day bump `version`
-- first (`INSERT … ON CONFLICT DO UPDATE`), which serialises them.
CREATE TABLE technician_days (
    technician_id TEXT NOT NULL,
    date          DATE NOT NULL,
    version       INTEGER NOT NULL,
    PRIMARY KEY (technician_id, date)
);

-- Idempotency keys of booking requests, per API key (Stripe's model), stored in the
-- same transaction as the booking they made.
CREATE TABLE idempotency_keys (
    key             TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('in_progress', 'done')),
    response_status INTEGER,
    response_body   TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
