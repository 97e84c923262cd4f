#!/bin/sh
# Waits for the server, registers namespace default and the search
# attributes the platform's workflows carry, then waits until the frontend
# accepts a query on them: what `trafficmanager dev --temporal cluster` does
# once the server serves.
# Idempotent. The server address comes from TEMPORAL_ADDRESS.
# Rendered by internal/devstack from temporalcluster.yaml.tmpl (temporal-compose.yml).
set -eu
# retry CMD...: up to a minute, once a second (the server starting, then the
# namespace registry every service caches, refreshed every few seconds).
retry() {
  n=0
  until "$@" >/dev/null 2>&1; do
    n=$((n + 1))
    if [ "$n" -ge 60 ]; then
      "$@"
      return 1
    fi
    sleep 1
  done
}
retry temporal operator cluster health
temporal operator namespace describe --namespace default >/dev/null 2>&1 ||
  temporal operator namespace create --namespace default --retention 24h
retry temporal operator search-attribute create --namespace default --name TmTenant --type Keyword --name TmService --type Keyword --name TmEnv --type Keyword --name TmVersion --type Keyword --name TmAction --type Keyword --name TmStatus --type Keyword --name TmRoutes --type KeywordList
retry temporal workflow count --namespace default --query "TmTenant = 'readiness-probe' AND TmService = 'readiness-probe' AND TmEnv = 'readiness-probe' AND TmVersion = 'readiness-probe' AND TmAction = 'readiness-probe' AND TmStatus = 'readiness-probe' AND TmRoutes = 'readiness-probe'"
echo "namespace default ready"
