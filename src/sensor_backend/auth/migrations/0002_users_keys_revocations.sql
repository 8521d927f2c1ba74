-- Users: the password hash is argon2id (PHC string); usernames are unique case-insensitively.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT ARRAY['user'],
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_len CHECK (char_length(username) BETWEEN 3 AND 64)
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- Signing keys (Ed25519). The newest active key signs; retired keys stay published in the
-- JWKS until every token they signed has expired (publish_until).
CREATE TABLE signing_keys (
    kid           text PRIMARY KEY,
    algorithm     text NOT NULL,
    private_pem   text NOT NULL,
    public_jwk    jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz,
    publish_until timestamptz
);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    sub        text NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);
