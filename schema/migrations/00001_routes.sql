-- +goose Up
CREATE TABLE tenants (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE services (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    BIGINT NOT NULL REFERENCES tenants(id),
    service_name TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, service_name)
);

CREATE TABLE environments (
    id         BIGSERIAL PRIMARY KEY,
    service_id BIGINT NOT NULL REFERENCES services(id),
    env_name   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (service_id, env_name)
);

-- One row per route. (environment_id, version) is unique and is also the
-- index the read path's point lookup uses.
CREATE TABLE endpoints (
    id             BIGSERIAL PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments(id),
    version        TEXT NOT NULL,
    url            TEXT NOT NULL,
    is_active      BOOLEAN NOT NULL DEFAULT true,
    revision       BIGINT NOT NULL DEFAULT 1,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The last change's event id and what the route was before it, so a
    -- re-run of that mutation (mutations retry) is recognised and replays
    -- its side effects instead of seeing "nothing changed".
    last_event_id   TEXT NOT NULL DEFAULT '',
    previous_url    TEXT NOT NULL DEFAULT '',
    previous_active BOOLEAN,
    UNIQUE (environment_id, version)
);

-- Cache warming reads the most recently changed active routes.
CREATE INDEX endpoints_active_updated_idx ON endpoints (updated_at DESC) WHERE is_active;

-- +goose Down
DROP TABLE endpoints;
DROP TABLE environments;
DROP TABLE services;
DROP TABLE tenants;
