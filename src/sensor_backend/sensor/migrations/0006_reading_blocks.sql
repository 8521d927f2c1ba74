-- Readings stored as rows of 8,000 bytes instead of three TOASTed bytea values (issue 14,
-- bench/upload_formats.py). A TOASTed value is cut into chunks of ~2 kB, each one heap
-- tuple and one index entry of its own, inserted one by one: 12,000 of them for a million
-- readings with timestamps and reference, about 100-150 ms of server CPU per upload, the
-- largest cost left in accepting a binary upload. Blocks that fit a page are never TOASTed
-- (STORAGE PLAIN, and the table has no TOAST table at all), there are 4x fewer of them,
-- and COPY writes them with heap_multi_insert: a third to a half of the server CPU.
-- A block is 1,000 little-endian float64 (8,000 bytes: a heap tuple must fit in one 8 kB
-- page with its header); the last block of a series is shorter.
CREATE TABLE test_reading_blocks (
    test_id  uuid     NOT NULL REFERENCES tests (id) ON DELETE CASCADE,
    series   smallint NOT NULL CHECK (series BETWEEN 0 AND 2),  -- values, timestamps, reference
    block    integer  NOT NULL CHECK (block >= 0),
    data     bytea    NOT NULL,
    PRIMARY KEY (test_id, series, block)
);
ALTER TABLE test_reading_blocks ALTER COLUMN data SET STORAGE PLAIN;

INSERT INTO test_reading_blocks (test_id, series, block, data)
SELECT r.test_id, c.series, b.block, substring(c.data FROM b.block * 8000 + 1 FOR 8000)
FROM test_readings r
CROSS JOIN LATERAL (
    VALUES (0, r.values_f64), (1, r.timestamps_f64), (2, r.reference_f64)
) AS c (series, data)
CROSS JOIN LATERAL generate_series(0, greatest(octet_length(c.data) - 1, 0) / 8000) AS b (block)
WHERE c.data IS NOT NULL;

DROP TABLE test_readings;

-- The readings of a test as whole arrays, as the table had them (GET /test/{id}/readings
-- and a worker of another replica read them so). Correlated per test, so a lookup by
-- test_id reads that test's blocks through the primary key and nothing else.
CREATE VIEW test_readings AS
SELECT
    t.id AS test_id,
    (SELECT string_agg(b.data, ''::bytea ORDER BY b.block) FROM test_reading_blocks b
      WHERE b.test_id = t.id AND b.series = 0) AS values_f64,
    (SELECT string_agg(b.data, ''::bytea ORDER BY b.block) FROM test_reading_blocks b
      WHERE b.test_id = t.id AND b.series = 1) AS timestamps_f64,
    (SELECT string_agg(b.data, ''::bytea ORDER BY b.block) FROM test_reading_blocks b
      WHERE b.test_id = t.id AND b.series = 2) AS reference_f64
FROM tests t
WHERE EXISTS (SELECT FROM test_reading_blocks b WHERE b.test_id = t.id AND b.series = 0);
