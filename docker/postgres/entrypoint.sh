#!/bin/sh
# Initialise the cluster on first start (empty volume), then run postgres in the foreground.
set -eu
# setpriv (util-linux, always present) execs in place, so postgres stays PID 1 and gets signals.
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
: "${POSTGRES_USER:=quarterdeck}"
: "${POSTGRES_DB:=quarterdeck}"
# The password from the environment, or from a file (a Docker/Compose secret), not both.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    echo "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both" >&2
    exit 64
  fi
  if [ ! -r "$POSTGRES_PASSWORD_FILE" ]; then
    echo "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is not readable" >&2
    exit 64
  fi
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) must be set" >&2
  exit 64
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  chown -R postgres:postgres "$PGDATA"
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
       --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
shared_preload_libraries = 'age'
max_connections = 300
shared_buffers = 256MB
CONF
  # Connections published through the engine's port forward arrive from the bridge
  # address, not from loopback, so password auth must be accepted from any host.
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
       -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
