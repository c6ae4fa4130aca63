#!/usr/bin/env bash
# Runs the portal (daphne: HTTP + WebSocket) and, when the runtime exists, the crew worker.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=config.settings.production
HOST=${QD_HOST:-127.0.0.1}
PORT=${QD_PORT:-8000}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT INT TERM

if .venv/bin/python manage.py help run_crews >/dev/null 2>&1; then
  .venv/bin/python manage.py run_crews &
  pids+=($!)
fi

cat <<TXT

  Quarterdeck is running.
    Portal     http://$HOST:$PORT/
    Admin      http://$HOST:$PORT/admin/
    API docs   http://$HOST:$PORT/api/docs/
  (logins were printed above by seed_demo; Ctrl-C stops everything)

TXT
.venv/bin/daphne -b "$HOST" -p "$PORT" config.asgi:application &
pids+=($!)
wait -n "${pids[@]}"
