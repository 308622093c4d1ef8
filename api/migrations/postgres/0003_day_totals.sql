-- Day totals and planned times (PostgreSQL). The SQLite twin is
-- migrations/sqlite/0003_day_totals.sql; this one adds the exclusion constraint.

-- Confirmed on-site minutes of a technician-day, claimed by a conditional write
-- (`… SET booked_minutes = booked_minutes + d WHERE booked_minutes + d <=
-- capacity_minutes`): a second net under the joint feasibility check. Holds are not
-- counted here (they lapse without a write); they count when confirmed.
-- `capacity_minutes` is the shift (with overtime, without the break), refreshed by
-- each booking of that day.
ALTER TABLE technician_days ADD COLUMN booked_minutes INTEGER NOT NULL DEFAULT 0
    CHECK (booked_minutes >= 0);
ALTER TABLE technician_days ADD COLUMN capacity_minutes INTEGER NOT NULL DEFAULT 1440;

UPDATE technician_days SET booked_minutes = (
    SELECT COALESCE(SUM(b.duration_minutes), 0) FROM bookings b
    WHERE b.technician_id = technician_days.technician_id
      AND b.date = technician_days.date AND b.status = 'confirmed');

-- When each visit is planned (on site from planned_start to planned_end), rewritten
-- for the whole technician-day by every write of that day; NULL for a cancelled
-- booking or a lapsed hold.
ALTER TABLE bookings ADD COLUMN planned_start TIMESTAMPTZ;
ALTER TABLE bookings ADD COLUMN planned_end TIMESTAMPTZ;

-- The second net: a technician's planned visits never overlap. Deferred to commit,
-- because a day's schedule is rewritten row by row.
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
    technician_id WITH =,
    tstzrange(planned_start, planned_end) WITH &&
) WHERE (planned_start IS NOT NULL) DEFERRABLE INITIALLY DEFERRED;

-- Lets the idempotency keys older than the 7 days they are kept for be purged.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
