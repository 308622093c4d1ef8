-- A visit the dispatcher moved in time (issue 7): its start is pinned no earlier than
-- `not_before` (RFC 3339 text here, TIMESTAMPTZ in migrations/postgres). Every
-- evaluation of the version's routes starts the visit at that time or later (it waits);
-- see docs/dispatch.md, "Moving a job in time".
ALTER TABLE plan_stops ADD COLUMN not_before TEXT;
