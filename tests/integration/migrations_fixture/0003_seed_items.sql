-- Not idempotent on purpose: running it twice violates items.name's unique constraint.
INSERT INTO items (name) VALUES ('seed');
INSERT INTO migration_runs (version) VALUES (3);
