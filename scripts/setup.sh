#!/usr/bin/env bash
# Installs what the platform and its tests need when it is missing, and
# nothing else: the postgresql and redis-server Debian packages (not started
# as services: dev and the tests start private instances when needed) and
# the Temporal CLI. Safe to run again.
set -euo pipefail

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1; fi
}

have_pg_server() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
have_pg_server || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install ${missing[*]} (no apt-get on this machine)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -qq
  # policy-rc.d keeps the packages from starting system services.
  sudo_if_needed sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  sudo_if_needed rm -f /usr/sbin/policy-rc.d
fi

gobin="$(go env GOPATH)/bin"
if ! command -v temporal >/dev/null 2>&1 && [ ! -x "$gobin/temporal" ]; then
  echo "setup: installing the Temporal CLI v1.5.1 into $gobin (takes a few minutes the first time)"
  go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi
echo "setup: ok"
