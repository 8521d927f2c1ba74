-- The processing log: one row per consumed event, keyed by the event id (the dedup key), so
-- a redelivered event is never counted twice. Written in the same transaction as counters.
CREATE TABLE processed_events (
    seq          bigserial UNIQUE,
    id           text PRIMARY KEY,
    type         text NOT NULL,
    source       text NOT NULL,
    subject      text,
    sensor_type  text,
    verdict      text,
    outcome      text NOT NULL,           -- processed | rejected
    detail       text,
    event_time   timestamptz,
    produced_at  timestamptz,             -- broker timestamp of the record
    processed_at timestamptz NOT NULL DEFAULT now(),
    partition    integer,
    "offset"     bigint
);
CREATE INDEX processed_events_type_seq ON processed_events (type, seq DESC);
CREATE INDEX processed_events_subject_seq ON processed_events (subject, seq DESC);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

-- Exact counters, incremented only when a processed_events row was inserted.
CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
