-- Machine clients (rigs) for the OAuth 2.0 client credentials grant (RFC 6749 §4.4).
-- secret_hash is HMAC-SHA256 of a 256-bit random secret (auth/clients.py says why not
-- argon2id); the secret itself is shown once, at creation or rotation, and never stored.
-- Revoked clients stay (revoked_at set) so their id is never reused and the list shows them.
CREATE TABLE clients (
    client_id   text PRIMARY KEY,
    name        text NOT NULL,
    scopes      text[] NOT NULL,
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT clients_name_len CHECK (char_length(name) BETWEEN 1 AND 64)
);
-- One live client per name (a revoked name may be provisioned again).
CREATE UNIQUE INDEX clients_name_live ON clients (lower(name)) WHERE revoked_at IS NULL;
