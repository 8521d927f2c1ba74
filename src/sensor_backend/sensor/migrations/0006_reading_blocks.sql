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

-- One series of a test as the whole array, the blocks in order. The blocks of a series
-- (8 MB at most) are sorted in memory if the plan sorts them at all: with the default
-- work_mem (4 MB) a plan made before the table has statistics (a bitmap scan, then a
-- sort) spilled to disk, 4x slower than reading the old TOASTed value.
CREATE FUNCTION reading_series(test uuid, which smallint) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SET work_mem = '32MB'
AS $$
    SELECT string_agg(data, ''::bytea ORDER BY block) FROM test_reading_blocks
    WHERE test_id = test AND series = which
$$;

-- The readings of a test as whole arrays, as the table had them (GET /test/{id}/readings
-- reads them so); a lookup by test_id touches that test's blocks and nothing else.
CREATE VIEW test_readings AS
SELECT
    t.id AS test_id,
    reading_series(t.id, 0::smallint) AS values_f64,
    reading_series(t.id, 1::smallint) AS timestamps_f64,
    reading_series(t.id, 2::smallint) AS reference_f64
FROM tests t
WHERE EXISTS (SELECT FROM test_reading_blocks b WHERE b.test_id = t.id AND b.series = 0);
