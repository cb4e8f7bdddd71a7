#!/usr/bin/env bash
# Redis on 127.0.0.1:63790, no persistence (loopback only).
# Usage: redis.sh [start|stop]
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORT="${EFFECT_SESSION_REDIS_PORT:-63790}"
DATA="$SERVICES_DIR/redis"
ensure_packages redis-server redis-server redis-tools
mkdir -p "$DATA"
case "${1:-start}" in
  stop)
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    ;;
  start)
    if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
      redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --dir "$DATA" --save "" \
        --appendonly no --logfile "$DATA/server.log" --pidfile "$DATA/redis.pid"
    fi
    wait_for redis redis-cli -h 127.0.0.1 -p "$PORT" ping
    echo "redis: redis://127.0.0.1:$PORT"
    ;;
esac
