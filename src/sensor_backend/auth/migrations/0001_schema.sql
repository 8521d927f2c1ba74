-- The "auth" schema itself is created by the migration runner (core/migrations.py), which also
-- keeps auth.schema_migrations. The service's tables arrive in the migrations that follow.
COMMENT ON SCHEMA auth IS 'sensor-backend auth service: owned and migrated by that service only';
