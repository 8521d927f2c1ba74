-- The "sensor" schema itself is created by the migration runner (core/migrations.py), which also
-- keeps sensor.schema_migrations. The service's tables arrive in the migrations that follow.
COMMENT ON SCHEMA sensor IS 'sensor-backend sensor service: owned and migrated by that service only';
