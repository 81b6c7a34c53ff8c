#!/usr/bin/env bash
# A throwaway PostgreSQL for the state-database tests, never shared with another checkout or test run.
#   run CMD...  start a private cluster (a new folder, a free port), run CMD with BC_PIPELINE_TEST_POSTGRES_URL set,
#               then stop exactly that cluster and remove its folder; exits with CMD's status (what `make test` does)
#   start       start (or reuse) the cluster in BC_PIPELINE_PG_DIR and print its SQLAlchemy URL
#   stop        stop the cluster in BC_PIPELINE_PG_DIR
# BC_PIPELINE_PG_DIR: the data folder (default: one per checkout, /tmp/bc_pipeline_pg-<hash of the checkout's path>);
# BC_PIPELINE_PG_PORT: the port (default: a free one, chosen when the cluster starts). A cluster already running in
# the folder is reused (its own port is printed); one in another folder is never touched: a port in use fails.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${BC_PIPELINE_PG_DIR:-/tmp/bc_pipeline_pg-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)}"

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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  BIN=$(find_bin) || {
    echo "installing PostgreSQL (apt-get)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
  }
  if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
  if as_owner "$BIN/pg_ctl -D '$DIR' status" >/dev/null 2>&1; then
    port=$(sed -n 4p "$DIR/postmaster.pid")  # the running cluster's own port, whatever BC_PIPELINE_PG_PORT says
  else
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" = "0" ] && chown postgres "$DIR"
    as_owner "$BIN/initdb -D '$DIR' -U postgres --auth=trust -E UTF8 >/dev/null"
    # A free port can be taken between choosing and binding: choose again (a port given is used or fails).
    for attempt in 1 2 3; do
      port="${BC_PIPELINE_PG_PORT:-$(free_port)}"
      if as_owner "$BIN/pg_ctl -D '$DIR' -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" -l '$DIR/log' -w start >/dev/null"; then
        break
      fi
      if [ -n "${BC_PIPELINE_PG_PORT:-}" ] || [ "$attempt" = 3 ]; then
        echo "PostgreSQL did not start on port $port (in use by another cluster?); see $DIR/log" >&2
        return 1
      fi
    done
  fi
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

stop() {
  BIN=$(find_bin) && as_owner "$BIN/pg_ctl -D '$DIR' -m fast stop" >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  run)
    shift
    if [ -z "${BC_PIPELINE_PG_DIR:-}" ]; then
      DIR=$(mktemp -d /tmp/bc_pipeline_pg.XXXXXX)
      private=1
    fi
    # Stop only a cluster this run started: one already running in a BC_PIPELINE_PG_DIR given is left running.
    BIN=$(find_bin 2>/dev/null) && as_owner "$BIN/pg_ctl -D '$DIR' status" >/dev/null 2>&1 && reused=1
    cleanup() {
      if [ -z "${reused:-}" ]; then stop; fi
      if [ -n "${private:-}" ]; then rm -rf "$DIR"; fi
    }
    trap cleanup EXIT
    BC_PIPELINE_TEST_POSTGRES_URL=$(start)
    export BC_PIPELINE_TEST_POSTGRES_URL
    status=0
    "$@" || status=$?
    exit $status
    ;;
  *) echo "usage: $0 start | stop | run CMD..." >&2; exit 2 ;;
esac
