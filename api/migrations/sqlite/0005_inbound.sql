-- Customer replies and the dispatcher queue (SQLite). The PostgreSQL twin is
-- migrations/postgres/0005_inbound.sql: same tables, columns and indexes; timestamps
-- are TEXT here (RFC 3339, UTC), written by the service.

-- When the customer last confirmed the visit through the chat (`POST /v1/chat/inbound`,
-- intent `confirm`). A confirmation older than the booking's last reschedule no longer
-- counts (checked against booking_history).
ALTER TABLE bookings ADD COLUMN customer_confirmed_at TEXT;

-- Every inbound chat message handled, by the chat platform's message id: a replay of
-- the same message gets the stored answer again; the same id with another body is
-- refused. `request_hash` is the SHA-256 of the message's canonical JSON.
CREATE TABLE inbound_messages (
    message_id   TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    intent       TEXT NOT NULL,
    booking_id   TEXT REFERENCES bookings (id),
    status_code  INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- Survey answers: CSAT 1 to 5, NPS 0 to 10; one per inbound message.
CREATE TABLE survey_responses (
    id          TEXT PRIMARY KEY NOT NULL,
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    customer_id TEXT REFERENCES customers (id),
    survey      TEXT NOT NULL CHECK (survey IN ('csat', 'nps')),
    score       INTEGER NOT NULL CHECK (
        (survey = 'csat' AND score BETWEEN 1 AND 5) OR (survey = 'nps' AND score BETWEEN 0 AND 10)),
    message_id  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE INDEX survey_responses_booking ON survey_responses (booking_id);

-- What a dispatcher should look at: a customer's free-text reply
-- (`customer_message`), a visit the customer has not confirmed by the evening before
-- (`no_show_risk`). `dedup_key` makes each entry once: the inbound message id, or the
-- booking and its date.
CREATE TABLE dispatcher_queue (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('customer_message', 'no_show_risk')),
    booking_id  TEXT REFERENCES bookings (id),
    customer_id TEXT REFERENCES customers (id),
    text        TEXT,
    status      TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    dedup_key   TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE INDEX dispatcher_queue_status ON dispatcher_queue (status, id);
