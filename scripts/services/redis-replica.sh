#!/usr/bin/env bash
# A read-only Redis replica on 127.0.0.1:63791 of the standalone Redis (127.0.0.1:63790), no
# persistence (loopback only). It answers writes with READONLY. Starts that Redis first.
# replica-priority 0: the Sentinel watching that Redis never promotes it when Redis is stopped.
# Usage: redis-replica.sh [start|stop]
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORT="${EFFECT_SESSION_REDIS_REPLICA_PORT:-63791}"
REDIS_PORT="${EFFECT_SESSION_REDIS_PORT:-63790}"
DATA="$SERVICES_DIR/redis-replica"
ensure_packages redis-server redis-server redis-tools
mkdir -p "$DATA"

replica_ok() {
  redis-cli -h 127.0.0.1 -p "$PORT" info replication 2>/dev/null | grep -q "^master_link_status:up"
}

case "${1:-start}" in
  stop)
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    ;;
  start)
    bash "$(dirname "$0")/redis.sh" start >/dev/null
    if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
      redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --dir "$DATA" --save "" \
        --appendonly no --replicaof 127.0.0.1 "$REDIS_PORT" --replica-read-only yes --replica-priority 0 \
        --logfile "$DATA/server.log" --pidfile "$DATA/redis.pid"
    fi
    wait_for redis-replica replica_ok
    echo "redis-replica: redis://127.0.0.1:$PORT (read-only replica of 127.0.0.1:$REDIS_PORT)"
    ;;
esac
