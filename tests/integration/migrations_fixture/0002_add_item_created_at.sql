ALTER TABLE items ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
INSERT INTO migration_runs (version) VALUES (2);
