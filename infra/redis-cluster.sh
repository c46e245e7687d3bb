#!/usr/bin/env bash
# A local three-master Redis Cluster for the tests and the bench.
#
#   infra/redis-cluster.sh start    # idempotent: a cluster already up is reused
#   infra/redis-cluster.sh status   # exit 0 when the cluster answers cluster_state:ok
#   infra/redis-cluster.sh stop
#
# Ports QML_REDIS_CLUSTER_PORTS (default "7000 7001 7002"), bound to
# 127.0.0.1, no persistence (--save "" --appendonly no), node files in
# QML_REDIS_CLUSTER_DIR (default ${TMPDIR:-/tmp}/qml-redis-cluster), each
# server daemonized with its own log there. No replicas: three masters
# share the 16384 slots (redis-cli --cluster create).
set -uo pipefail

PORTS=(${QML_REDIS_CLUSTER_PORTS:-7000 7001 7002})
DIR=${QML_REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/qml-redis-cluster}
HOST=127.0.0.1

log() { echo "[redis-cluster] $*" >&2; }
ping_port() { redis-cli -h "$HOST" -p "$1" ping 2>/dev/null | grep -q PONG; }
cluster_ok() { # every node sees the whole cluster, all slots served
  local info p
  for p in "${PORTS[@]}"; do
    info=$(redis-cli -h "$HOST" -p "$p" cluster info 2>/dev/null) || return 1
    grep -q "cluster_state:ok" <<<"$info" && grep -q "cluster_known_nodes:${#PORTS[@]}" <<<"$info" && grep -q "cluster_slots_assigned:16384" <<<"$info" || return 1
  done
}
wait_for() { # wait_for <tries> <command...>
  local n=$1
  shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

start() {
  if cluster_ok; then
    log "cluster up on ${PORTS[*]} (reused)"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 || { log "redis-server is not installed"; return 1; }
  mkdir -p "$DIR"
  local fresh=0
  for p in "${PORTS[@]}"; do
    if ping_port "$p"; then
      # Running but not (yet) a healthy cluster: only ours can be reused.
      redis-cli -h "$HOST" -p "$p" info cluster 2>/dev/null | grep -q "cluster_enabled:1" || {
        log "port $p answers but is not a cluster node: pick other ports with QML_REDIS_CLUSTER_PORTS"
        return 1
      }
      continue
    fi
    rm -f "$DIR/nodes-$p.conf"
    fresh=1
    redis-server --daemonize yes --bind "$HOST" --port "$p" \
      --cluster-enabled yes --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 5000 \
      --save "" --appendonly no --dir "$DIR" --logfile "$DIR/redis-$p.log" --pidfile "$DIR/redis-$p.pid" ||
      { log "redis-server on $p failed to start (see $DIR/redis-$p.log)"; return 1; }
  done
  for p in "${PORTS[@]}"; do wait_for 50 ping_port "$p" || { log "port $p does not answer"; return 1; }; done
  if ! cluster_ok; then
    # Nodes left over from a broken or half-made cluster would refuse to join: start the set clean.
    [ "$fresh" = 1 ] || log "nodes up but no healthy cluster: resetting them"
    for p in "${PORTS[@]}"; do
      redis-cli -h "$HOST" -p "$p" flushall >/dev/null 2>&1
      redis-cli -h "$HOST" -p "$p" cluster reset hard >/dev/null 2>&1
    done
    local nodes=()
    for p in "${PORTS[@]}"; do nodes+=("$HOST:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 ||
      { log "redis-cli --cluster create failed:"; cat "$DIR/create.log" >&2; return 1; }
    wait_for 100 cluster_ok || { log "cluster did not reach cluster_state:ok"; return 1; }
  fi
  log "cluster up on ${PORTS[*]}"
}

stop() {
  for p in "${PORTS[@]}"; do
    ping_port "$p" && redis-cli -h "$HOST" -p "$p" shutdown nosave >/dev/null 2>&1
  done
  for p in "${PORTS[@]}"; do rm -f "$DIR/nodes-$p.conf" "$DIR/redis-$p.pid"; done
  log "stopped ${PORTS[*]}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) cluster_ok ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
