-- Visit events (SQLite): what happened on the way to and at a booked visit, as the
-- technician (or a dispatcher) reports it: `POST /v1/bookings/{id}/events` and, later,
-- the mobile sync. The PostgreSQL twin is migrations/postgres/0009_visit_events.sql: same
-- columns; timestamps are TEXT here (RFC 3339, UTC). Each event writes its customer message
-- (outbox) in the same transaction.
CREATE TABLE visit_events (
    id          TEXT PRIMARY KEY NOT NULL,
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    kind        TEXT NOT NULL
        CHECK (kind IN ('en_route', 'running_late', 'arrived', 'completed', 'missed')),
    -- The ETA window announced (en_route, running_late).
    eta_start   TEXT,
    eta_end     TEXT,
    -- running_late: free words; missed: customer_absent | no_access.
    reason      TEXT,
    recorded_by TEXT NOT NULL,
    at          TEXT NOT NULL,
    CHECK ((eta_start IS NULL) = (eta_end IS NULL)),
    CHECK (eta_start IS NULL OR eta_start < eta_end)
);
CREATE INDEX visit_events_booking ON visit_events (booking_id, at);
