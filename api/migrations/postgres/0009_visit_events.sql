-- Visit events (PostgreSQL): what happened on the way to and at a booked visit, as the
-- technician (or a dispatcher) reports it: `POST /v1/bookings/{id}/events` and, later,
-- the mobile sync. The SQLite twin is migrations/sqlite/0009_visit_events.sql: same
-- columns; timestamps are TIMESTAMPTZ here. Each event writes its customer message
-- (outbox) in the same transaction.
CREATE TABLE visit_events (
    id          TEXT PRIMARY KEY,
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    kind        TEXT NOT NULL
        CHECK (kind IN ('en_route', 'running_late', 'arrived', 'completed', 'missed')),
    -- The ETA window announced (en_route, running_late).
    eta_start   TIMESTAMPTZ,
    eta_end     TIMESTAMPTZ,
    -- running_late: free words; missed: customer_absent | no_access.
    reason      TEXT,
    recorded_by TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    CHECK ((eta_start IS NULL) = (eta_end IS NULL)),
    CHECK (eta_start IS NULL OR eta_start < eta_end)
);
CREATE INDEX visit_events_booking ON visit_events (booking_id, at);
