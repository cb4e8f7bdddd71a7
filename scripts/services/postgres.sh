#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1:54329, database effect_session, user postgres (trust auth, loopback only).
# Usage: postgres.sh [start|stop|crash]   (crash: an immediate stop, as if the server died)
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORT="${EFFECT_SESSION_PG_PORT:-54329}"
DATA="$SERVICES_DIR/postgres"
ensure_packages /usr/lib/postgresql/15/bin/postgres postgresql
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_postgres() { runuser -u postgres -- "$@"; }
case "${1:-start}" in
  stop)
    [ -f "$DATA/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true
    ;;
  crash)
    [ -f "$DATA/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null || true
    ;;
  start)
    if [ ! -f "$DATA/PG_VERSION" ]; then
      mkdir -p "$DATA" && chown postgres:postgres "$DATA"
      as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=200 -c fsync=off" start >/dev/null
    fi
    wait_for postgres "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT"
    as_postgres psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'effect_session'" | grep -q 1 ||
      as_postgres psql -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE effect_session" >/dev/null
    echo "postgres: postgres://postgres@127.0.0.1:$PORT/effect_session"
    ;;
esac
