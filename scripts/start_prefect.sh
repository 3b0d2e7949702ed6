#!/usr/bin/env bash
# Start the Prefect server, the sentinel-pool work pool, Sentinel42's deployments and a worker.
# Returns when all are up. Logs: <data dir>/logs/, pid files: <data dir>/run/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prefect_env.sh"

if alive "$SERVER_PID" && alive "$WORKER_PID"; then
    echo "Sentinel42 is already running: server pid $(cat "$SERVER_PID"), worker pid $(cat "$WORKER_PID")"
    echo "Dashboard: http://$HOST:$PORT"
    exit 0
fi

started=$(date +%s)
if alive "$SERVER_PID"; then
    echo "server already running (pid $(cat "$SERVER_PID"))"
else
    if healthy; then
        echo "error: something else already answers on $HOST:$PORT; stop it or set SENTINEL42_PREFECT_PORT" >&2
        exit 1
    fi
    echo "starting Prefect server on http://$HOST:$PORT (log: $LOG_DIR/server.log)"
    setsid "$PREFECT" server start --host "$HOST" --port "$PORT" \
        >>"$LOG_DIR/server.log" 2>&1 </dev/null &
    echo $! >"$SERVER_PID"
fi
for _ in $(seq 1 120); do
    healthy && break
    if ! alive "$SERVER_PID"; then
        echo "error: the Prefect server exited; see $LOG_DIR/server.log" >&2
        tail -n 20 "$LOG_DIR/server.log" >&2 || true
        rm -f "$SERVER_PID"
        exit 1
    fi
    sleep 1
done
healthy || { echo "error: the server did not become healthy in 120 s; see $LOG_DIR/server.log" >&2; exit 1; }
echo "server healthy after $(( $(date +%s) - started )) s"

if "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1; then
    echo "work pool $POOL exists"
else
    "$PREFECT" work-pool create "$POOL" --type process >/dev/null
    echo "work pool $POOL created"
fi

"$PY" "$ROOT/flows/deployments.py" --pool "$POOL"

if alive "$WORKER_PID"; then
    echo "worker already running (pid $(cat "$WORKER_PID"))"
else
    echo "starting worker on $POOL (log: $LOG_DIR/worker.log)"
    setsid "$PREFECT" worker start --pool "$POOL" --name "sentinel42-$(hostname)" \
        >>"$LOG_DIR/worker.log" 2>&1 </dev/null &
    echo $! >"$WORKER_PID"
    for _ in $(seq 1 60); do
        grep -q "started!" "$LOG_DIR/worker.log" 2>/dev/null && break
        alive "$WORKER_PID" || { echo "error: the worker exited; see $LOG_DIR/worker.log" >&2; exit 1; }
        sleep 1
    done
fi
echo "Sentinel42 is up after $(( $(date +%s) - started )) s. Dashboard: http://$HOST:$PORT"
