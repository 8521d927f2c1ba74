-- The outbox's dead letters (DESIGN.md §7; sensor/outbox.py, sensor/dead_letter_routes.py):
-- a row the event service refused for good stays as status 'dead' with its reason, the
-- refusal's HTTP status and when, for an operator to replay (back to 'pending') or discard
-- ('discarded', kept with who and when until the sent-row retention purges it).
ALTER TABLE outbox
    ADD COLUMN dead_at      timestamptz,
    ADD COLUMN dead_status  integer,
    ADD COLUMN times_dead   integer NOT NULL DEFAULT 0,
    ADD COLUMN discarded_at timestamptz,
    ADD COLUMN discarded_by text;

-- Rows dead before this migration: when they died is unknown, their creation is the bound.
UPDATE outbox SET dead_at = created_at, times_dead = 1 WHERE status = 'dead';

ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'discarded'));

CREATE INDEX outbox_discarded ON outbox (discarded_at) WHERE status = 'discarded';
