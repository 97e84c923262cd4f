#!/bin/sh
# Waits for the server, registers namespace default and the search
# attributes the platform's workflows carry, then waits until the frontend accepts a query on them
# (the namespace registry is refreshed every few seconds): what
# `trafficmanager dev --temporal cluster` does once the server serves.
# Idempotent. The server address comes from TEMPORAL_ADDRESS.
# Rendered by internal/devstack from temporalcluster.yaml.tmpl (temporal-compose.yml).
set -eu
until temporal operator cluster health >/dev/null 2>&1; do
  sleep 1
done
temporal operator namespace describe --namespace default >/dev/null 2>&1 ||
  temporal operator namespace create --namespace default --retention 24h
temporal operator search-attribute create --namespace default --name TmTenant --type Keyword --name TmService --type Keyword --name TmEnv --type Keyword --name TmVersion --type Keyword --name TmAction --type Keyword
until temporal workflow count --namespace default --query "TmTenant = 'readiness-probe' AND TmService = 'readiness-probe' AND TmEnv = 'readiness-probe' AND TmVersion = 'readiness-probe' AND TmAction = 'readiness-probe'" >/dev/null; do
  sleep 1
done
