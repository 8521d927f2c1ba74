-- Readings stored as rows of 8,000 bytes instead of three TOASTed bytea values (issue 14,
-- bench/upload_formats.py). A TOASTed value is cut into chunks of ~2 kB, each one heap
-- tuple and one index entry of its own, inserted one by one: 12,000 of them for a million
-- readings with timestamps and reference, about 100-150 ms of server CPU per upload, the
-- largest cost left in accepting a binary upload. Blocks that fit a page are never TOASTed
-- (STORAGE PLAIN: a block is never compressed or moved out of line), there are 4x fewer,
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

-- One series of a test written as blocks. Used to move the existing readings below and by
-- the view's INSTEAD OF INSERT trigger (old replicas during a rolling upgrade insert into
-- test_readings). The value is detoasted once (`|| ''`): substring() of a pglz-compressed
-- value decompresses from its start at every call, which made a per-block copy quadratic
-- (about 3 s for each million-reading array written before migration 0005).
CREATE FUNCTION store_reading_series(test uuid, which smallint, series_data bytea)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    plain bytea := series_data || ''::bytea;
BEGIN
    IF series_data IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO test_reading_blocks (test_id, series, block, data)
    SELECT test, which, b.block, substring(plain FROM b.block * 8000 + 1 FOR 8000)
    FROM generate_series(0, greatest(octet_length(plain) - 1, 0) / 8000) AS b (block);
END
$$;

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT test_id, values_f64, timestamps_f64, reference_f64 FROM test_readings LOOP
        PERFORM store_reading_series(r.test_id, 0::smallint, r.values_f64);
        PERFORM store_reading_series(r.test_id, 1::smallint, r.timestamps_f64);
        PERFORM store_reading_series(r.test_id, 2::smallint, r.reference_f64);
    END LOOP;
END
$$;

DROP TABLE test_readings;

-- One series of a test as the whole array, the blocks in order. The blocks of a series
-- (8 MB at most) are sorted in memory if the plan sorts them at all: with the default
-- work_mem (4 MB) a plan made before the table has statistics (a bitmap scan, then a
-- sort) spilled to disk, 4x slower than reading the old TOASTed value.
CREATE FUNCTION reading_series(test uuid, which smallint) RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE SET work_mem = '32MB'
AS $$
DECLARE
    whole bytea;
    blocks bigint;
    last_block integer;
    short_blocks bigint;
    last_short integer;
    readings integer;
BEGIN
    SELECT string_agg(data, ''::bytea ORDER BY block), count(*), max(block),
           count(*) FILTER (WHERE octet_length(data) <> 8000),
           max(block) FILTER (WHERE octet_length(data) <> 8000)
    INTO whole, blocks, last_block, short_blocks, last_short
    FROM test_reading_blocks
    WHERE test_id = test AND series = which;
    SELECT n_readings INTO readings FROM tests WHERE id = test;
    -- A missing block, or a short one before the last, would shift every later reading, and
    -- a lost last block would shorten the series: refuse instead of returning such an array.
    IF blocks > 0 AND (blocks <> last_block + 1
        OR short_blocks > 1 OR (short_blocks = 1 AND last_short <> last_block)
        OR octet_length(whole) <> 8 * readings) THEN
        RAISE EXCEPTION 'readings of test % (series %) are incomplete: % blocks, the last %',
            test, which, blocks, last_block USING ERRCODE = 'data_corrupted';
    END IF;
    RETURN whole;
END
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

CREATE FUNCTION test_readings_insert() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM store_reading_series(NEW.test_id, 0::smallint, NEW.values_f64);
    PERFORM store_reading_series(NEW.test_id, 1::smallint, NEW.timestamps_f64);
    PERFORM store_reading_series(NEW.test_id, 2::smallint, NEW.reference_f64);
    RETURN NEW;
END
$$;

CREATE TRIGGER test_readings_insert INSTEAD OF INSERT ON test_readings
FOR EACH ROW EXECUTE FUNCTION test_readings_insert();
