-- +goose Up
-- The watch stream (resolver, GET /api/v1/watch/{tenant}) follows one
-- tenant's changes in commit order, (xid, seq), from a cursor: this index
-- makes that a range scan instead of a scan of the whole ledger.
CREATE INDEX route_ledger_watch_idx ON route_ledger (tenant, xid, seq) WHERE outcome = 'changed';

-- +goose Down
DROP INDEX route_ledger_watch_idx;
