#!/usr/bin/env bash
# A three-master Redis Cluster on 127.0.0.1:7101-7103, no replicas, no persistence (loopback only).
# Usage: redis-cluster.sh [start|stop]
set -euo pipefail
source "$(dirname "$0")/_lib.sh"
PORTS=(7101 7102 7103)
DATA="$SERVICES_DIR/redis-cluster"
ensure_packages redis-server redis-server redis-tools
mkdir -p "$DATA"

cluster_ok() {
  redis-cli -h 127.0.0.1 -p "${PORTS[0]}" cluster info 2>/dev/null | grep -q "^cluster_state:ok"
}

case "${1:-start}" in
  stop)
    for port in "${PORTS[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    ;;
  start)
    for port in "${PORTS[@]}"; do
      mkdir -p "$DATA/$port"
      if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$DATA/$port" --save "" \
          --appendonly no --cluster-enabled yes --cluster-config-file "$DATA/$port/nodes.conf" \
          --cluster-node-timeout 5000 --logfile "$DATA/$port/server.log" --pidfile "$DATA/$port/redis.pid"
      fi
    done
    for port in "${PORTS[@]}"; do
      wait_for "redis cluster node $port" redis-cli -h 127.0.0.1 -p "$port" ping
    done
    known=$(redis-cli -h 127.0.0.1 -p "${PORTS[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
    if ! cluster_ok && [ "${known:-1}" -gt 1 ]; then
      # Nodes restarted with their nodes.conf find each other again by themselves.
      for _ in $(seq 1 20); do cluster_ok && break; sleep 0.5; done
    fi
    if ! cluster_ok; then
      # No cluster yet, or a broken one: start over with empty nodes.
      for port in "${PORTS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null
        redis-cli -h 127.0.0.1 -p "$port" cluster reset hard >/dev/null
      done
      redis-cli --cluster create 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103 \
        --cluster-replicas 0 --cluster-yes >"$DATA/create.log" 2>&1 || {
        cat "$DATA/create.log" >&2
        exit 1
      }
    fi
    wait_for "redis cluster state ok" cluster_ok
    echo "redis-cluster: redis://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
    ;;
esac
