-- Sensor tests as a durable job queue, their readings, user-defined sensor types and the
-- transactional outbox of events (DESIGN.md §5 "Durability"; sensor/jobs.py, sensor/outbox.py).

-- User-defined sensor types (POST /sensor-types); built-ins live in code (sensor/specs.py).
CREATE TABLE sensor_types (
    name        text        PRIMARY KEY,
    spec        jsonb       NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per accepted test: the request, the queue state (status, lease, attempts) and,
-- once completed, the result. The spec is frozen at submission (overrides applied), so a
-- later change of a user-defined type never alters a queued test.
CREATE TABLE tests (
    id               uuid        PRIMARY KEY,
    seq              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,  -- FIFO and list cursor
    sensor_type      text        NOT NULL,
    device_id        text        NOT NULL,
    source           text        NOT NULL CHECK (source IN ('readings', 'simulate')),
    spec             jsonb       NOT NULL,
    params           jsonb       NOT NULL,  -- simulate parameters, overrides, reading count
    n_readings       integer     NOT NULL,
    submitted_by     text        NOT NULL,
    idempotency_key  text,
    request_hash     bytea       NOT NULL,
    traceparent      text,
    event_id         uuid        NOT NULL UNIQUE,  -- stable across retries: the dedup key
    status           text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL,
    run_after        timestamptz NOT NULL DEFAULT now(),
    claimed_by       text,
    lease_token      uuid,
    lease_until      timestamptz,
    last_error       text,
    error            text,      -- why a test ended failed
    verdict          text       CHECK (verdict IN ('pass', 'suspect', 'fail')),
    result           jsonb,
    processing_ms    double precision,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);

-- Idempotency-Key is scoped to the caller (the token's subject).
CREATE UNIQUE INDEX tests_idempotency ON tests (submitted_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The claim scans queued rows in submission order; the reaper scans running leases.
CREATE INDEX tests_queued ON tests (seq) WHERE status = 'queued';
CREATE INDEX tests_running ON tests (lease_until) WHERE status = 'running';
-- GET /tests filters (newest first by seq).
CREATE INDEX tests_by_device ON tests (device_id, seq);
CREATE INDEX tests_by_type ON tests (sensor_type, seq);

-- Readings as little-endian float64 arrays: 8 bytes a reading, 24 MB for a million readings
-- with timestamps and reference, against ~25 MB of JSON text or far more as jsonb. Kept out
-- of "tests" so claiming and listing never touch them.
CREATE TABLE test_readings (
    test_id     uuid  PRIMARY KEY REFERENCES tests (id) ON DELETE CASCADE,
    values_f64      bytea NOT NULL,
    timestamps_f64  bytea,
    reference_f64   bytea
);

-- Events leave through this table, written in the transaction that records the result; a
-- relay in every replica claims rows (SKIP LOCKED plus a lease) and posts them to the event
-- service, which deduplicates on the event id.
CREATE TABLE outbox (
    seq              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid        NOT NULL UNIQUE,
    test_id          uuid        NOT NULL REFERENCES tests (id) ON DELETE CASCADE,
    event_type       text        NOT NULL,
    event            jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by       text,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);

CREATE INDEX outbox_pending ON outbox (seq) WHERE status = 'pending';
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE status = 'sent';
CREATE INDEX outbox_dead ON outbox (seq) WHERE status = 'dead';
CREATE INDEX outbox_by_test ON outbox (test_id);
