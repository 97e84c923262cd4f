-- +goose Up
-- Weighted traffic splits: which share of an env's unversioned resolves
-- goes to which version. One row per split; weights is a JSON object of
-- version name to integer percent (summing to 100, at most 10 versions,
-- each an active route of the env when the split changes).
CREATE TABLE route_splits (
    tenant     TEXT NOT NULL,
    service    TEXT NOT NULL,
    env        TEXT NOT NULL,
    weights    JSONB NOT NULL,
    -- Grows by one with every change of the split, deletes included, and
    -- continues after a delete (from the ledger), so a revision names one
    -- state of the split forever and cache floors stay valid.
    revision   BIGINT NOT NULL,
    -- The slot table (routes.SplitSlots bytes, each an index into the
    -- versions in name order) the resolver maps routing keys with. It is
    -- computed from the previous table at every change, moving as few
    -- slots as possible, so raising a version's weight moves keys only
    -- into it (docs/splits.md).
    slots      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, service, env)
);

-- The route store checks, under the route's row lock, that a deactivate
-- does not leave a split pointing at an inactive version.
CREATE INDEX route_splits_versions_idx ON route_splits USING gin (weights jsonb_path_ops);

-- The ledger of split mutations, with route_ledger's exactly-once rules:
-- one row per mutation event id, written in the transaction of the change,
-- looked up first by every commit.
CREATE TABLE split_ledger (
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    service       TEXT NOT NULL,
    env           TEXT NOT NULL,
    -- changed: made a new revision; unchanged: the split already had the
    -- requested state; rejected: error_type/error_message say why.
    outcome       TEXT NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'rejected')),
    -- split_updated or split_deleted.
    action        TEXT NOT NULL,
    -- The split after the mutation (NULL weights: no split).
    revision      BIGINT NOT NULL DEFAULT 0,
    weights       JSONB,
    previous_weights JSONB,
    changed_by    TEXT NOT NULL DEFAULT '',
    workflow_id   TEXT NOT NULL DEFAULT '',
    error_type    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT split_ledger_event_id_key UNIQUE (event_id)
);

-- One changed row per revision of a split; also the history's index.
CREATE UNIQUE INDEX split_ledger_revision_idx ON split_ledger (tenant, service, env, revision DESC)
    WHERE outcome = 'changed';

-- +goose Down
DROP TABLE split_ledger;
DROP TABLE route_splits;
