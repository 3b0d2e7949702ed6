# Sourced by the Prefect scripts: where things live and how to reach the server.
# Override with SENTINEL42_PREFECT_HOST / SENTINEL42_PREFECT_PORT / SENTINEL42_DATA_DIR.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "error: no virtual environment in $ROOT/.venv; run 'make install' first" >&2
    exit 2
fi
PY="$ROOT/.venv/bin/python"
PREFECT="$ROOT/.venv/bin/prefect"
HOST="${SENTINEL42_PREFECT_HOST:-127.0.0.1}"
PORT="${SENTINEL42_PREFECT_PORT:-4200}"
if ! DATA_DIR="$("$PY" -c 'from sentinel42.settings import load_settings; print(load_settings(require_replay_dir=False).data_dir)' 2>&1)"; then
    echo "error: ${DATA_DIR##*ConfigError: }" >&2
    exit 2
fi
RUN_DIR="$DATA_DIR/run"
LOG_DIR="$DATA_DIR/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR"
export PREFECT_HOME="${PREFECT_HOME:-$DATA_DIR/prefect}"
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export PREFECT_LOGGING_EXTRA_LOGGERS="${PREFECT_LOGGING_EXTRA_LOGGERS:-sentinel42}"
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-5}"
POOL="sentinel-pool"
SERVER_PID="$RUN_DIR/server.pid"
WORKER_PID="$RUN_DIR/worker.pid"

alive() {  # alive PIDFILE: the process recorded there is running
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

healthy() {  # one look at /api/health (the same check the systemd worker unit waits on)
    "$PY" "$ROOT/scripts/wait_for_server.py" --url "$PREFECT_API_URL" --timeout 0 >/dev/null 2>&1
}
