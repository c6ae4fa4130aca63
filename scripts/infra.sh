#!/usr/bin/env bash
# Brings up what Quarterdeck needs to run and test, idempotently:
#   engine    Docker if a daemon answers, else Podman with its Docker-compatible API service
#   postgres  the project's PostgreSQL 17 + pgvector + AGE image, running on $QD_PG_PORT
#   redis     a Redis answering on $REDIS_URL (the Channels layer)
#   browser   Debian's chromium for the browser tests
# A second run only checks, and takes a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR"

QD_PG_PORT=${QD_PG_PORT:-55432}
QD_PG_CONTAINER=${QD_PG_CONTAINER:-quarterdeck-postgres}
QD_PG_VOLUME=${QD_PG_VOLUME:-quarterdeck-pgdata}
QD_PG_PASSWORD=${QD_PG_PASSWORD:-quarterdeck}
QD_PG_IMAGE_BASE=quarterdeck/postgres
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PODMAN_SOCKET="$RUN_DIR/podman.sock"

log() { printf '\033[1;34m[infra]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[infra]\033[0m %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root (or sudo) to install: ${missing[*]}"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  }
}

# --- container engine -------------------------------------------------------------------
engine_cli() { cat "$RUN_DIR/engine" 2>/dev/null || echo docker; }

write_containers_conf() {
  # This sandbox rejects crun's cgroup handling and setrlimit on NOFILE/NPROC; these three
  # settings are what lets containers start at all.
  cat > "$RUN_DIR/containers.conf" <<CONF
[containers]
default_ulimits = []
pids_limit = 0
[engine]
runtime = "runc"
CONF
}

podman_env() { export CONTAINERS_CONF="$RUN_DIR/containers.conf"; }

ensure_engine() {
  # A Docker daemon of its own: not Podman's socket reached through an inherited DOCKER_HOST
  # (scripts/env.sh exports ours), which would pass for one and leave the engine misnamed.
  if have docker && env -u DOCKER_HOST docker info >/dev/null 2>&1; then
    echo docker > "$RUN_DIR/engine"
    echo "unix:///var/run/docker.sock" > "$RUN_DIR/docker_host"
    return 0
  fi
  apt_install podman runc debootstrap
  write_containers_conf
  podman_env
  echo podman > "$RUN_DIR/engine"
  # The Docker Engine API on a socket, so the docker SDK (container runtime) drives Podman.
  if ! curl -s --max-time 2 --unix-socket "$PODMAN_SOCKET" http://d/_ping 2>/dev/null | grep -q OK; then
    rm -f "$PODMAN_SOCKET"
    log "starting the Podman API service on $PODMAN_SOCKET"
    nohup setsid podman system service --time=0 "unix://$PODMAN_SOCKET" \
      >"$RUN_DIR/podman-service.log" 2>&1 < /dev/null &
    for _ in $(seq 1 50); do
      curl -s --max-time 1 --unix-socket "$PODMAN_SOCKET" http://d/_ping 2>/dev/null | grep -q OK && break
      sleep 0.2
    done
  fi
  echo "unix://$PODMAN_SOCKET" > "$RUN_DIR/docker_host"
  ensure_base_image
}

ensure_base_image() {
  podman image exists debian:trixie-slim && return 0
  log "debian:trixie-slim is not present; trying to pull it"
  if podman pull -q docker.io/library/debian:trixie-slim >/dev/null 2>&1; then
    return 0
  fi
  # No registry reachable: build the same base from the Debian archive.
  log "no registry; building debian:trixie-slim with debootstrap (about a minute)"
  local dir
  dir=$(mktemp -d /var/tmp/qd-trixie.XXXXXX)
  debootstrap --variant=minbase --include=ca-certificates trixie "$dir" >"$RUN_DIR/debootstrap.log" 2>&1 \
    || die "debootstrap failed, see $RUN_DIR/debootstrap.log"
  tar -C "$dir" -c . | podman import - debian:trixie-slim >/dev/null
  rm -rf "$dir"
}

# --- postgres ------------------------------------------------------------------------------
pg_image_tag() {
  # The tag follows the image's sources, so editing the Dockerfile rebuilds it.
  cat "$ROOT/docker/postgres/Dockerfile" "$ROOT/docker/postgres/entrypoint.sh" | sha256sum | cut -c1-12
}

ensure_postgres() {
  ensure_engine
  local cli image
  cli=$(engine_cli)
  [ "$cli" = podman ] && podman_env
  image="$QD_PG_IMAGE_BASE:$(pg_image_tag)"
  if ! $cli image inspect "$image" >/dev/null 2>&1; then
    log "building $image"
    $cli build -q -t "$image" "$ROOT/docker/postgres" >/dev/null
  fi
  local running_image
  running_image=$($cli inspect -f '{{.ImageName}}' "$QD_PG_CONTAINER" 2>/dev/null \
                  || $cli inspect -f '{{.Config.Image}}' "$QD_PG_CONTAINER" 2>/dev/null || true)
  if [ -n "$running_image" ] && [ "${running_image#localhost/}" != "$image" ]; then
    log "replacing $QD_PG_CONTAINER (image changed; data stays on volume $QD_PG_VOLUME)"
    $cli rm -f "$QD_PG_CONTAINER" >/dev/null 2>&1
  fi
  if [ -n "$running_image" ] && ! pg_container_alive "$cli"; then
    # The engine still says "running", but the container's processes are gone (a session
    # that ended killed them, conmon included): it can neither exec nor be started again.
    log "replacing $QD_PG_CONTAINER (its processes are gone; data stays on volume $QD_PG_VOLUME)"
    $cli rm -f "$QD_PG_CONTAINER" >/dev/null 2>&1
  fi
  pg_create_or_start "$cli" "$image"
  pg_wait_ready "$cli" 75 && return 0
  # Not ready in 15 s: recreate the container once (the data is on the volume), then wait again.
  log "postgres is not answering; recreating $QD_PG_CONTAINER"
  $cli logs --tail 15 "$QD_PG_CONTAINER" >&2 || true
  $cli rm -f "$QD_PG_CONTAINER" >/dev/null 2>&1 || true
  pg_create_or_start "$cli" "$image"
  pg_wait_ready "$cli" 300 && return 0
  $cli logs --tail 30 "$QD_PG_CONTAINER" >&2 || true
  die "postgres did not become ready"
}

# "running" with a live main process, or not running at all (then it can simply be started).
pg_container_alive() {
  local cli=$1 state pid
  [ "$cli" = podman ] || return 0  # a Docker daemon may live in another PID namespace
  state=$($cli inspect -f '{{.State.Running}} {{.State.Pid}}' "$QD_PG_CONTAINER" 2>/dev/null) || return 0
  [ "${state%% *}" = "true" ] || return 0
  pid=${state##* }
  # A killed process whose parent is gone too can stay a zombie: that counts as dead.
  [ "$pid" -gt 0 ] 2>/dev/null && [ -r "/proc/$pid/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

pg_create_or_start() {
  local cli=$1 image=$2
  if ! $cli container inspect "$QD_PG_CONTAINER" >/dev/null 2>&1; then
    log "creating container $QD_PG_CONTAINER on 127.0.0.1:$QD_PG_PORT"
    $cli volume inspect "$QD_PG_VOLUME" >/dev/null 2>&1 || $cli volume create "$QD_PG_VOLUME" >/dev/null
    $cli run -d --name "$QD_PG_CONTAINER" \
      -e POSTGRES_USER=quarterdeck -e POSTGRES_PASSWORD="$QD_PG_PASSWORD" -e POSTGRES_DB=quarterdeck \
      -p "127.0.0.1:$QD_PG_PORT:5432" -v "$QD_PG_VOLUME:/var/lib/postgresql/data" \
      --shm-size=256m "$image" >/dev/null
  elif [ "$($cli inspect -f '{{.State.Running}}' "$QD_PG_CONTAINER")" != "true" ]; then
    log "starting container $QD_PG_CONTAINER"
    $cli start "$QD_PG_CONTAINER" >/dev/null
  fi
}

# Up to $2 tries, 0.2 s apart.
pg_wait_ready() {
  local cli=$1 tries=$2
  for _ in $(seq 1 "$tries"); do
    if $cli exec "$QD_PG_CONTAINER" pg_isready -q -h 127.0.0.1 -U quarterdeck 2>/dev/null; then
      # pg_isready answers while the first-start init still runs on the unix socket only.
      if (exec 3<>"/dev/tcp/127.0.0.1/$QD_PG_PORT") 2>/dev/null; then
        log "postgres ready on 127.0.0.1:$QD_PG_PORT"
        return 0
      fi
    fi
    sleep 0.2
  done
  return 1
}

# --- redis ---------------------------------------------------------------------------------
redis_ping() {
  python3 - "$REDIS_URL" <<'PY'
import socket, sys
from urllib.parse import urlparse
u = urlparse(sys.argv[1])
try:
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=1)
    if u.password:
        s.sendall(b"AUTH %s\r\n" % u.password.encode()); s.recv(64)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

ensure_redis() {
  redis_ping && return 0
  have redis-server || apt_install redis-server
  local port
  port=$(python3 -c "from urllib.parse import urlparse;import sys;print(urlparse(sys.argv[1]).port or 6379)" "$REDIS_URL")
  log "starting redis-server on 127.0.0.1:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log"
  for _ in $(seq 1 50); do redis_ping && return 0; sleep 0.1; done
  die "redis did not answer on $REDIS_URL"
}

# --- browser -------------------------------------------------------------------------------
ensure_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium chromium-driver
}

case "${1:-all}" in
  engine) ensure_engine ;;
  postgres) ensure_postgres ;;
  redis) ensure_redis ;;
  browser) ensure_browser ;;
  docker-host) cat "$RUN_DIR/docker_host" 2>/dev/null ;;
  pg-exec)  # run a command in the Postgres container (stdin passed through)
    shift
    cli=$(engine_cli)
    if [ "$cli" = podman ]; then podman_env; fi
    exec "$cli" exec -i "$QD_PG_CONTAINER" "$@" ;;
  all) ensure_postgres; ensure_redis ;;
  *) die "usage: $0 [engine|postgres|redis|browser|docker-host|all|pg-exec COMMAND...]" ;;
esac
