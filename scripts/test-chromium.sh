#!/usr/bin/env bash
# Chromium for the browser test of the Dagster UI (Selenium drives it): `install` puts Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) on the machine if they are missing (idempotent);
# the test starts its own headless browser, and Selenium Manager downloads nothing.
set -euo pipefail
case "${1:-install}" in
  install)
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
      echo "installing chromium and chromium-driver (apt-get)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >&2
    fi
    ;;
esac
