#!/usr/bin/env bash
# MariaDB on 127.0.0.1:33069, database effect_session, user root without password (loopback only).
# Usage: mariadb.sh [start|stop]
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORT="${EFFECT_SESSION_MYSQL_PORT:-33069}"
DATA="$SERVICES_DIR/mariadb"
ensure_packages mariadbd mariadb-server mariadb-client
client() { mariadb --protocol=tcp -h 127.0.0.1 -P "$PORT" -u root "$@"; }
case "${1:-start}" in
  stop)
    if [ -f "$DATA/mariadb.pid" ]; then
      kill "$(cat "$DATA/mariadb.pid")" 2>/dev/null || true
      for _ in $(seq 1 60); do [ -f "$DATA/mariadb.pid" ] || break; sleep 0.5; done
    fi
    ;;
  start)
    if [ ! -d "$DATA/db/mysql" ]; then
      mkdir -p "$DATA/db"
      mariadb-install-db --user=root --datadir="$DATA/db" --auth-root-authentication-method=normal \
        --skip-test-db >/dev/null
    fi
    if ! client -e "SELECT 1" >/dev/null 2>&1; then
      setsid nohup mariadbd --user=root --datadir="$DATA/db" --port="$PORT" --bind-address=127.0.0.1 \
        --socket="$DATA/mariadb.sock" --pid-file="$DATA/mariadb.pid" --max-connections=300 \
        --innodb-flush-log-at-trx-commit=0 --log-error="$DATA/server.log" >/dev/null 2>&1 &
    fi
    wait_for mariadb client -e "SELECT 1"
    client -e "CREATE DATABASE IF NOT EXISTS effect_session"
    echo "mariadb: mysql://root@127.0.0.1:$PORT/effect_session"
    ;;
esac
