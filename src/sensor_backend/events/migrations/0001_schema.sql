-- The "events" schema itself is created by the migration runner (core/migrations.py), which also
-- keeps events.schema_migrations. The service's tables arrive in the migrations that follow.
COMMENT ON SCHEMA events IS 'sensor-backend events service: owned and migrated by that service only';
