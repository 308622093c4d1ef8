-- Customer messages (SQLite): the transactional outbox, webhook endpoints and the
-- customers' message preferences. The PostgreSQL twin is
-- migrations/postgres/0004_outbox.sql: same tables, columns and indexes; timestamps are
-- TEXT here (RFC 3339, UTC), written by the service.

-- How a customer wants to be told: a BCP-47 language tag from the service's list
-- (NULL: the operation's default language), the preferred channel (`webhook` or
-- `email`; NULL: webhook) and the channels opted out of (comma-separated, '' for none).
ALTER TABLE customers ADD COLUMN language TEXT;
ALTER TABLE customers ADD COLUMN preferred_channel TEXT
    CHECK (preferred_channel IN ('webhook', 'email'));
ALTER TABLE customers ADD COLUMN opt_out TEXT NOT NULL DEFAULT '';

-- One customer message, written in the same transaction as the change that causes it
-- (booking, reschedule, cancel). `id` is the stable event id receivers deduplicate by.
-- `payload` is the JSON snapshot of the facts (the booking as it was); the text is
-- rendered at delivery in the customer's language and time zone. Workers claim due
-- rows by lease (`lease_owner`, `lease_until`), never by an id cursor; `attempts`
-- counts claims, so a worker that dies mid-delivery still uses one up.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    booking_id      TEXT NOT NULL REFERENCES bookings (id),
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    channel         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'superseded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);

-- Claiming: the due pending rows, oldest due first.
CREATE INDEX outbox_claim ON outbox (status, next_attempt_at);
CREATE INDEX outbox_booking ON outbox (booking_id, status);

-- Where the chat platform integration receives messages. `secret` signs each request
-- (HMAC-SHA256); it is shown once, when the endpoint is made.
CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    created_at TEXT NOT NULL
);
