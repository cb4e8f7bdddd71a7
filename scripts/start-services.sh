#!/usr/bin/env bash
# Starts every real server the tests need, on loopback, with data in a temporary directory.
# Each scripts/services/*.sh installs its server if missing (Debian packages), starts it on
# its fixed port and waits until it answers. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
for service in scripts/services/[!_]*.sh; do
  [ -e "$service" ] || continue
  echo "== starting $(basename "$service" .sh)"
  bash "$service"
done
