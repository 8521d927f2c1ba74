-- The per-reading flags stored uncompressed (issue 14, bench/upload_formats.py), as the
-- readings were in 0005: pglz compressing the million bytes of a million-reading test's
-- flags took 15-20 ms of the result's transaction (24-31 ms against 8-14 ms for the
-- INSERT), for ~80 kB on disk instead of 1 MB. Only rows written from now on are affected.
ALTER TABLE test_reading_flags ALTER COLUMN flags_u8 SET STORAGE EXTERNAL;
