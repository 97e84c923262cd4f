#!/usr/bin/env bash
# Installs what `trafficmanager dev` and the tests need when it is missing,
# and nothing else:
#   - the Debian packages postgresql and redis-server (server binaries only:
#     no system service is started; dev and the tests start private
#     instances when the machine runs none),
#   - the Debian package wrk (the HTTP load generator of `go tool task bench`),
#   - the Debian package chromium (the web console's browser tests drive it
#     headless with chromedp),
#   - the Temporal CLI v1.5.1 (`temporal server start-dev`),
#   - for `dev --temporal cluster`: the Temporal server and its SQL tool
#     v1.29.1 and the Temporal UI server v2.42.1 (the one the CLI embeds).
# Idempotent: a second run installs nothing and says "setup: ok".
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

have_pg_server() {
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    return 0
  fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
  done
  return 1
}

missing=()
have_pg_server || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: install ${missing[*]} with your package manager (no apt-get here), or set TM_DATABASE_URL / TM_REDIS_URL (wrk is needed by the bench only)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A policy-rc.d answering 101 keeps the packages' postinst scripts from
  # starting system services. An existing one is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

gobin="$(go env GOPATH)/bin"
if ! command -v temporal >/dev/null 2>&1 && [ ! -x "$gobin/temporal" ]; then
  echo "setup: installing the Temporal CLI v1.5.1 into $gobin (a few minutes the first time)"
  go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

# `go install` names these three binaries server, sql and server: too generic
# for a PATH (and two collide). Each is built into a scratch GOBIN and moved
# into $gobin under the name the Temporal images use (temporal-server,
# temporal-sql-tool) or, for the UI, temporal-ui-server. A binary that is
# there but reports another version is replaced.
has_version() { # name version: in $gobin or on PATH, reporting that version
  local p
  for p in "$gobin/$1" "$(command -v "$1" 2>/dev/null || true)"; do
    [ -n "$p" ] && [ -x "$p" ] && "$p" --version 2>/dev/null | grep -qF "$2" && return 0
  done
  return 1
}
install_as() { # name package version
  local name=$1 pkg=$2 version=$3 tmp
  has_version "$name" "$version" && return 0
  echo "setup: installing $name $version ($pkg) into $gobin (a few minutes the first time)"
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install "$pkg@v$version"
  mkdir -p "$gobin"
  mv "$tmp/$(basename "$pkg")" "$gobin/$name"
  rm -rf "$tmp"
}
install_as temporal-server go.temporal.io/server/cmd/server 1.29.1
install_as temporal-sql-tool go.temporal.io/server/cmd/tools/sql 1.29.1
install_as temporal-ui-server github.com/temporalio/ui-server/v2/cmd/server 2.42.1
echo "setup: ok"
