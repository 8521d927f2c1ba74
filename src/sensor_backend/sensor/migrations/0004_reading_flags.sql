-- The aggregate QARTOD flag of every reading (worst of the point tests: 1 pass, 2 not
-- evaluated, 3 suspect, 4 fail, 9 missing; issue 13), one byte a reading, written with the
-- result so GET /test/{id}/readings returns the flags the verdict came from. Kept apart from
-- test_readings: simulated tests have flags but no stored readings.
CREATE TABLE test_reading_flags (
    test_id   uuid  PRIMARY KEY REFERENCES tests (id) ON DELETE CASCADE,
    flags_u8  bytea NOT NULL
);
