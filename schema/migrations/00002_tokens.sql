-- +goose Up
-- API tokens. Only the SHA-256 of a token is stored; the secret is shown once.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'writer', 'reader', 'resolver')),
    tenants      TEXT[] NOT NULL DEFAULT '{}',
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- +goose Down
DROP TABLE api_tokens;
