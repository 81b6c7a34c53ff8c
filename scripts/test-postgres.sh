#!/usr/bin/env bash
# A throwaway PostgreSQL for the state-database tests: `start` prints the SQLAlchemy URL, `stop` ends it.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail
DIR="${BC_PIPELINE_PG_DIR:-/tmp/bc_pipeline_pg}"
PORT="${BC_PIPELINE_PG_PORT:-55432}"

find_bin() {
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/pg_ctl" ] && { echo "$candidate"; return; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return; }
  return 1
}

as_owner() {
  if [ "$(id -u)" = "0" ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

case "${1:-start}" in
  start)
    BIN=$(find_bin) || {
      echo "installing PostgreSQL (apt-get)" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
      BIN=$(find_bin)
    }
    if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
    if ! as_owner "$BIN/pg_ctl -D '$DIR' status" >/dev/null 2>&1; then
      rm -rf "$DIR"; mkdir -p "$DIR"
      [ "$(id -u)" = "0" ] && chown postgres "$DIR"
      as_owner "$BIN/initdb -D '$DIR' -U postgres --auth=trust -E UTF8 >/dev/null"
      as_owner "$BIN/pg_ctl -D '$DIR' -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" -l '$DIR/log' -w start >/dev/null"
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    BIN=$(find_bin) && as_owner "$BIN/pg_ctl -D '$DIR' -m fast stop" >/dev/null 2>&1 || true
    ;;
esac
