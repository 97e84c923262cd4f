-- +goose Up
-- A rollback's ledger row names the revision it restored; NULL for every
-- other change.
ALTER TABLE route_ledger ADD COLUMN rollback_to BIGINT;

-- +goose Down
ALTER TABLE route_ledger DROP COLUMN rollback_to;
