# Sourced by the Prefect scripts: where things live and how to reach the server.
# Override with SENTINEL42_PREFECT_HOST / SENTINEL42_PREFECT_PORT / SENTINEL42_DATA_DIR.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
umask 077  # logs, pid files, PREFECT_HOME and the store: owner-only
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "error: no virtual environment in $ROOT/.venv; run 'make install' first" >&2
    exit 2
fi
PY="$ROOT/.venv/bin/python"
PREFECT="$ROOT/.venv/bin/prefect"
HOST="${SENTINEL42_PREFECT_HOST:-127.0.0.1}"
PORT="${SENTINEL42_PREFECT_PORT:-4200}"
# The settings the scripts need, one per line (a bad value: one line naming it, exit 2).
if ! SETTINGS="$("$PY" -W ignore -c 'from sentinel42.settings import load_settings
s = load_settings(require_replay_dir=False)
print(s.data_dir, s.metrics_host, s.metrics_port, s.prefect_run_retention_days, sep="\n")' 2>&1)"; then
    echo "error: ${SETTINGS##*ConfigError: }" >&2
    exit 2
fi
{ read -r DATA_DIR; read -r METRICS_HOST; read -r METRICS_PORT; read -r RUN_RETENTION_DAYS; } <<<"$SETTINGS"
RUN_DIR="$DATA_DIR/run"
LOG_DIR="$DATA_DIR/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR"
export PREFECT_HOME="${PREFECT_HOME:-$DATA_DIR/prefect}"
# Clients reach a server that listens on every interface through loopback.
case "$HOST" in 0.0.0.0 | :: | "[::]") API_HOST=127.0.0.1 ;; *) API_HOST="$HOST" ;; esac
export PREFECT_API_URL="http://$API_HOST:$PORT/api"
# A server started with PREFECT_SERVER_API_AUTH_STRING (user:password) refuses requests without
# it: the worker, its flow runs, the CLI and the exporter send it as PREFECT_API_AUTH_STRING.
if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
    export PREFECT_API_AUTH_STRING="${PREFECT_API_AUTH_STRING:-$PREFECT_SERVER_API_AUTH_STRING}"
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export PREFECT_LOGGING_EXTRA_LOGGERS="${PREFECT_LOGGING_EXTRA_LOGGERS:-sentinel42}"
# The worker asks for due runs every second (Prefect's default is 10 s): a forced run starts
# within about a second (docs/benchmarks.md), for one small query a second to a local server.
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-1}"
# The worker's health check (--with-healthcheck) would listen on 0.0.0.0 otherwise.
export PREFECT_WORKER_WEBSERVER_HOST="${PREFECT_WORKER_WEBSERVER_HOST:-127.0.0.1}"
# Prefect's own database vacuum prunes finished flow runs (with their logs and artifacts) older
# than SENTINEL42_PREFECT_RUN_RETENTION_DAYS; events expire after 7 days (Prefect's default).
export PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED="${PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED:-events,flow_runs}"
export PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD="${PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD:-$((RUN_RETENTION_DAYS * 86400))}"
POOL="sentinel-pool"
CLI="$ROOT/.venv/bin/sentinel42"
SERVER_PID="$RUN_DIR/server.pid"
WORKER_PID="$RUN_DIR/worker.pid"
METRICS_PID="$RUN_DIR/metrics.pid"
LOG_MAX_BYTES="${SENTINEL42_LOG_MAX_BYTES:-10485760}"  # rotate a log at start when above 10 MiB
LOG_KEEP="${SENTINEL42_LOG_KEEP:-5}"  # rotated logs kept: name.log.1 (newest) .. name.log.5

alive() {  # alive PIDFILE: the process recorded there is running
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

healthy() {  # one look at /api/health (the same check the systemd worker unit waits on)
    "$PY" "$ROOT/scripts/wait_for_server.py" --url "$PREFECT_API_URL" --timeout 0 >/dev/null 2>&1
}

rotate_log() {  # rotate_log FILE: a log over LOG_MAX_BYTES moves to FILE.1 (FILE.1 to FILE.2...)
    local log="$1" i
    [ -f "$log" ] && [ "$(wc -c <"$log")" -gt "$LOG_MAX_BYTES" ] || return 0
    rm -f "$log.$LOG_KEEP"
    for ((i = LOG_KEEP - 1; i >= 1; i--)); do
        [ -f "$log.$i" ] && mv -f "$log.$i" "$log.$((i + 1))"
    done
    mv -f "$log" "$log.1"
}

launch() {  # launch LOG PIDFILE CMD...: CMD in a session of its own (stop signals the whole
    # group), its output appended to LOG, its pid in PIDFILE
    local log="$1" pidfile="$2"
    shift 2
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

listening() {  # listening HOST PORT: something accepts TCP connections there
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

loopback() {  # loopback HOST: an address of this machine only (127.0.0.0/8, ::1, localhost)
    case "$1" in 127.* | localhost | ::1 | "[::1]") return 0 ;; *) return 1 ;; esac
}
