-- +goose Up
-- The watch stream (resolver, GET /api/v1/watch/{tenant}) follows changes in
-- commit order, (xid, seq), from a cursor: one tenant's (a stream's history,
-- a tenant's live tail) and every tenant's (the once-a-second sweep that
-- wakes tails whose event was missed). These make both range scans instead
-- of scans of the whole ledger.
CREATE INDEX route_ledger_watch_idx ON route_ledger (tenant, xid, seq) WHERE outcome = 'changed';
CREATE INDEX route_ledger_watch_all_idx ON route_ledger (xid, seq) INCLUDE (tenant) WHERE outcome = 'changed';

-- +goose Down
DROP INDEX route_ledger_watch_all_idx;
DROP INDEX route_ledger_watch_idx;
