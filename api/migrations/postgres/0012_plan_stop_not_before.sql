-- A visit the dispatcher moved in time (issue 7): its start is pinned no earlier than
-- `not_before`. Every evaluation of the version's routes starts the visit at that time
-- or later (it waits); see docs/dispatch.md, "Moving a job in time". The SQLite twin is
-- migrations/sqlite/0012_plan_stop_not_before.sql (TEXT there).
ALTER TABLE plan_stops ADD COLUMN not_before TIMESTAMPTZ;
