-- Unqualified names land in the schema being migrated (search_path).
CREATE TABLE items (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
);

-- Counts how often each migration body ran: must stay exactly once per version.
CREATE TABLE migration_runs (
    version integer NOT NULL
);
INSERT INTO migration_runs (version) VALUES (1);
