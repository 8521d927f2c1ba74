-- Readings are stored uncompressed (issue 14, bench/upload_formats.py). PostgreSQL's default
-- TOAST strategy compresses every bytea over 2 kB with pglz, and this server has no lz4:
-- for a million readings (three 8 MB arrays) that made the INSERT of an upload 1.0 to 1.5 s
-- instead of 0.3 s, and every read of the readings 0.15 to 0.27 s of decompression instead
-- of 0.04 s. EXTERNAL keeps the values out of line (claiming and listing still never touch
-- them) but raw: about twice the disk of compressed rounded readings, 8 bytes a reading.
-- Only rows written from now on are affected.
ALTER TABLE test_readings
    ALTER COLUMN values_f64 SET STORAGE EXTERNAL,
    ALTER COLUMN timestamps_f64 SET STORAGE EXTERNAL,
    ALTER COLUMN reference_f64 SET STORAGE EXTERNAL;
