#!/usr/bin/env bash
# A Redis Sentinel on 127.0.0.1:26390 watching the standalone Redis (127.0.0.1:63790) as master
# "effect-session" (loopback only). Starts that Redis first.
# Usage: redis-sentinel.sh [start|stop]
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORT="${EFFECT_SESSION_SENTINEL_PORT:-26390}"
REDIS_PORT="${EFFECT_SESSION_REDIS_PORT:-63790}"
DATA="$SERVICES_DIR/redis-sentinel"
ensure_packages redis-server redis-server redis-tools
mkdir -p "$DATA"
case "${1:-start}" in
  stop)
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    ;;
  start)
    bash "$(dirname "$0")/redis.sh" start >/dev/null
    if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
      # Sentinel rewrites its configuration file, so it gets a fresh one of its own.
      cat > "$DATA/sentinel.conf" <<CONF
port $PORT
bind 127.0.0.1
daemonize yes
dir $DATA
logfile $DATA/sentinel.log
pidfile $DATA/sentinel.pid
sentinel monitor effect-session 127.0.0.1 $REDIS_PORT 1
sentinel down-after-milliseconds effect-session 5000
CONF
      redis-server "$DATA/sentinel.conf" --sentinel
    fi
    wait_for redis-sentinel redis-cli -h 127.0.0.1 -p "$PORT" sentinel get-master-addr-by-name effect-session
    echo "redis-sentinel: sentinel://127.0.0.1:$PORT (master effect-session)"
    ;;
esac
