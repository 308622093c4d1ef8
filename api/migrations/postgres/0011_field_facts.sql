-- What technicians record in the field, checked and made visible to dispatchers (issue 8):
-- the upsell catalogue and the offers made on the phones, the equipment at each customer,
-- the link from a job to its booking (so job status facts reach the customer), the
-- dispatcher's notes and serials to collect, and who resolved a sync flag. PostgreSQL;
-- the SQLite twin is migrations/sqlite/0011_field_facts.sql (INTEGER there where BIGINT
-- here, TEXT where TIMESTAMPTZ and DATE). See docs/sync.md.

-- The ISP's products a technician may offer at a visit. `code` is what the phone sends
-- (`product_code` of an `upsell_outcome` fact).
CREATE TABLE upsell_products (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    billing     TEXT NOT NULL CHECK (billing IN ('one_off', 'monthly')),
    active      BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every offer recorded on a phone, once (the fact id is the key), checked against the
-- catalogue when it arrived: `known` false for a product not in the catalogue or not
-- active (then flagged, never dropped). `day` is the visit's day (the job's window, in the
-- operation's time zone): phones' clocks are not trusted and offline pushes arrive late.
CREATE TABLE upsell_offers (
    offer_id      TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    technician_id TEXT NOT NULL,
    product_code  TEXT NOT NULL,
    known         BOOLEAN NOT NULL,
    price_cents   BIGINT NOT NULL,
    billing       TEXT NOT NULL CHECK (billing IN ('one_off', 'monthly')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('accepted', 'declined')),
    day           DATE NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX upsell_offers_day ON upsell_offers (day, technician_id);

-- One row per serial (one physical device): where it is and in which state.
-- installed: at `customer_id`; to_return: the customer must give it back (a collection
-- recorded on `collected_job` waits for that job's completion); returned: back with the ISP.
CREATE TABLE customer_equipment (
    serial          TEXT PRIMARY KEY,
    customer_id     TEXT REFERENCES customers (id),
    state           TEXT NOT NULL CHECK (state IN ('installed', 'to_return', 'returned')),
    model           TEXT,
    installed_job   TEXT,
    installed_by    TEXT,
    collected_job   TEXT,
    collected_by    TEXT,
    returned_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX customer_equipment_customer ON customer_equipment (customer_id);
CREATE INDEX customer_equipment_collected ON customer_equipment (collected_job);

-- A job done for a booked visit: its status facts become the booking's visit events
-- (customer messages). One job per booking.
ALTER TABLE jobs ADD COLUMN booking_id TEXT REFERENCES bookings (id);
CREATE UNIQUE INDEX jobs_booking ON jobs (booking_id);
-- The dispatcher's words for the technician, and the serials to collect (JSON array).
ALTER TABLE jobs ADD COLUMN notes TEXT;
ALTER TABLE jobs ADD COLUMN collect_serials TEXT;

-- Who resolved a flag of the dispatcher's queue, and how.
ALTER TABLE sync_flags ADD COLUMN resolved_by TEXT;
ALTER TABLE sync_flags ADD COLUMN resolution TEXT;
