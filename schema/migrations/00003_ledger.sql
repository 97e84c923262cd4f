-- +goose Up
-- The ledger of applied mutations: one row per mutation (its event id),
-- written in the same transaction as the change it records. Every commit
-- looks its event id up here first, so a mutation that already applied
-- (a workflow reset, `mutations retry`, a lost COMMIT reply) returns the
-- outcome recorded the first time and changes nothing, whatever committed
-- since. The rows with outcome 'changed' are each route's revision history.
CREATE TABLE route_ledger (
    seq            BIGSERIAL PRIMARY KEY,
    event_id       TEXT NOT NULL,
    -- NULL only for a rejected change of a route that does not exist.
    endpoint_id    BIGINT REFERENCES endpoints(id),
    tenant         TEXT NOT NULL,
    service        TEXT NOT NULL,
    env            TEXT NOT NULL,
    version        TEXT NOT NULL,
    -- changed: made a new revision; unchanged: the route already was in the
    -- requested state; rejected: not found or conflict (error_*);
    -- baseline: the route's state when the ledger was introduced.
    outcome        TEXT NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'rejected', 'baseline')),
    action         TEXT NOT NULL,
    -- The route after the mutation (its state at the time when unchanged).
    revision       BIGINT NOT NULL DEFAULT 0,
    url            TEXT NOT NULL DEFAULT '',
    is_active      BOOLEAN NOT NULL DEFAULT false,
    previous_url   TEXT NOT NULL DEFAULT '',
    previous_state TEXT NOT NULL DEFAULT '',
    changed_by     TEXT NOT NULL DEFAULT '',
    workflow_id    TEXT NOT NULL DEFAULT '',
    error_type     TEXT NOT NULL DEFAULT '',
    error_message  TEXT NOT NULL DEFAULT '',
    -- The writing transaction, for readers that need commit order rather
    -- than seq order (a bigserial taken in concurrent transactions is not).
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT route_ledger_event_id_key UNIQUE (event_id)
);

-- One ledger row per revision of a route; also the history's index.
CREATE UNIQUE INDEX route_ledger_revision_idx ON route_ledger (endpoint_id, revision DESC)
    WHERE outcome IN ('changed', 'baseline');

-- Routes that existed before the ledger start with a baseline row for their
-- current revision; its event id is the last change's, so a re-run of that
-- change is still recognised.
INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action,
                          revision, url, is_active, previous_url, previous_state, occurred_at)
SELECT CASE WHEN e.last_event_id <> '' THEN e.last_event_id ELSE 'baseline:' || e.id END,
       e.id, t.name, s.service_name, en.env_name, e.version, 'baseline', 'baseline',
       e.revision, e.url, e.is_active, e.previous_url,
       CASE WHEN e.previous_active IS NULL THEN '' WHEN e.previous_active THEN 'active' ELSE 'inactive' END,
       e.updated_at
FROM endpoints e
JOIN environments en ON en.id = e.environment_id
JOIN services s ON s.id = en.service_id
JOIN tenants t ON t.id = s.tenant_id;

-- The ledger replaces the row's memory of its last change.
ALTER TABLE endpoints DROP COLUMN last_event_id, DROP COLUMN previous_url, DROP COLUMN previous_active;

-- +goose Down
ALTER TABLE endpoints
    ADD COLUMN last_event_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN previous_url TEXT NOT NULL DEFAULT '',
    ADD COLUMN previous_active BOOLEAN;
DROP TABLE route_ledger;
