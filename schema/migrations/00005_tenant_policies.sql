-- +goose Up
-- Per-tenant approval policies: a write to a route whose env is listed in
-- require_approval_envs waits for an approver (at most
-- approval_timeout_seconds). A tenant without a row needs no approval.
CREATE TABLE tenant_policies (
    tenant                   TEXT PRIMARY KEY,
    require_approval_envs    TEXT[] NOT NULL DEFAULT '{}',
    approval_timeout_seconds BIGINT NOT NULL CHECK (approval_timeout_seconds > 0),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by               TEXT NOT NULL DEFAULT ''
);

-- The approver role: reads plus approve/reject for its tenants.
ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'writer', 'reader', 'resolver', 'approver'));

-- +goose Down
ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'writer', 'reader', 'resolver')) NOT VALID;
DROP TABLE tenant_policies;
