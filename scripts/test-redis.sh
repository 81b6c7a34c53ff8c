#!/usr/bin/env bash
# Redis for the Celery executor's test (the broker and result backend): `install` puts Debian's redis-server on
# the machine if it is missing (idempotent); the test starts its own server on a free port in a private folder.
set -euo pipefail
case "${1:-install}" in
  install)
    if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
      echo "installing redis-server (apt-get)" >&2
      apt-get update -qq >&2
      # RUNLEVEL=1: install the binary only, without starting the distribution's own service.
      DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends redis-server >&2
    fi
    ;;
esac
