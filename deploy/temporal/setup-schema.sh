#!/bin/sh
# Creates (when missing) and migrates the Temporal databases with
# temporal-sql-tool 1.29.1, the steps `trafficmanager dev --temporal cluster`
# runs before it starts the server. Idempotent. The connection comes from
# SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD.
# Rendered by internal/devstack from temporalcluster.yaml.tmpl (temporal-compose.yml).
set -eu
SQL_DATABASE=temporal temporal-sql-tool create-database || echo "database temporal exists"
SQL_DATABASE=temporal temporal-sql-tool setup-schema -v 0.0
SQL_DATABASE=temporal temporal-sql-tool update-schema --schema-name postgresql/v12/temporal
SQL_DATABASE=temporal_visibility temporal-sql-tool create-database || echo "database temporal_visibility exists"
SQL_DATABASE=temporal_visibility temporal-sql-tool setup-schema -v 0.0
SQL_DATABASE=temporal_visibility temporal-sql-tool update-schema --schema-name postgresql/v12/visibility
