#!/usr/bin/env bash
# Start the Prefect server, the sentinel-pool work pool, Sentinel42's deployments, a worker and
# the metrics exporter. Returns when all are up. Logs: <data dir>/logs/ (rotated at start when
# over SENTINEL42_LOG_MAX_BYTES, SENTINEL42_LOG_KEEP kept), pid files: <data dir>/run/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prefect_env.sh"

# Whoever can create a flow run on a process pool runs code here: the API is served beyond this
# machine only behind a password.
if ! loopback "$HOST" && [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
    echo "error: SENTINEL42_PREFECT_HOST=$HOST would open the Prefect API (it runs code on this machine) to the network without a password; set PREFECT_SERVER_API_AUTH_STRING=user:password, or SENTINEL42_PREFECT_HOST=127.0.0.1" >&2
    exit 2
fi

if alive "$SERVER_PID" && alive "$WORKER_PID" && alive "$METRICS_PID"; then
    echo "Sentinel42 is already running: server pid $(cat "$SERVER_PID"), worker pid $(cat "$WORKER_PID"), metrics pid $(cat "$METRICS_PID")"
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
    rotate_log "$LOG_DIR/server.log"
    launch "$LOG_DIR/server.log" "$SERVER_PID" "$PREFECT" server start --host "$HOST" --port "$PORT"
fi
for _ in $(seq 1 400); do  # 120 s
    healthy && break
    if ! alive "$SERVER_PID"; then
        echo "error: the Prefect server exited; see $LOG_DIR/server.log" >&2
        tail -n 20 "$LOG_DIR/server.log" >&2 || true
        rm -f "$SERVER_PID"
        exit 1
    fi
    sleep 0.3
done
healthy || { echo "error: the server did not become healthy in 120 s; see $LOG_DIR/server.log" >&2; exit 1; }
echo "server healthy after $(( $(date +%s) - started )) s"

if alive "$METRICS_PID"; then
    echo "metrics exporter already running (pid $(cat "$METRICS_PID"))"
else
    if listening "$METRICS_HOST" "$METRICS_PORT"; then
        echo "error: something else listens on $METRICS_HOST:$METRICS_PORT; set SENTINEL42_METRICS_PORT" >&2
        exit 1
    fi
    echo "starting metrics exporter on http://$METRICS_HOST:$METRICS_PORT/metrics (log: $LOG_DIR/metrics.log)"
    rotate_log "$LOG_DIR/metrics.log"
    launch "$LOG_DIR/metrics.log" "$METRICS_PID" \
        "$ROOT/.venv/bin/sentinel42" metrics serve --host "$METRICS_HOST" --port "$METRICS_PORT"
fi

# Independent clients at once (each pays Python's and Prefect's imports): the work pool and the
# deployments, then the runs a crash left in flight; beside them the automations. Their output
# is shown in this order once all have ended.
STEPS="$(mktemp -d "$RUN_DIR/start.XXXXXX")"
trap 'rm -rf "$STEPS"' EXIT
"$ROOT/.venv/bin/sentinel42" alerts install >"$STEPS/alerts" 2>&1 &  # automations and channels
alerts_pid=$!
# Runs left in flight by a crash or a kill (no process of theirs alive here) end Crashed and give
# back their deployments' concurrency slots: the server keeps those leases in memory only, so
# after a restart nothing else would. With no worker running, none of our runs can be starting.
grace=60
alive "$WORKER_PID" || grace=0
(
    "$PY" "$ROOT/flows/deployments.py" --pool "$POOL" >"$STEPS/deploy" 2>&1 || exit 1
    "$CLI" runs cleanup --grace-seconds "$grace" >"$STEPS/cleanup" 2>&1 || exit 2
) &
deploy_pid=$!
failed=0
wait "$deploy_pid" || failed=$?
cat "$STEPS/deploy"
wait "$alerts_pid" || failed=1
cat "$STEPS/alerts"
[ -f "$STEPS/cleanup" ] && cat "$STEPS/cleanup"
if [ "$failed" -eq 2 ]; then
    echo "warning: the runs left in flight were not cleaned up; run 'sentinel42 runs cleanup'" >&2
    failed=0
fi
if [ "$failed" -ne 0 ]; then
    echo "error: registering the deployments or the alerts failed (output above)" >&2
    exit 1
fi

if alive "$WORKER_PID"; then
    echo "worker already running (pid $(cat "$WORKER_PID"))"
else
    echo "starting worker on $POOL (log: $LOG_DIR/worker.log)"
    rotate_log "$LOG_DIR/worker.log"
    # The log is appended to: only what this worker writes counts as its "started!" line.
    seen=0
    [ -f "$LOG_DIR/worker.log" ] && seen=$(wc -c <"$LOG_DIR/worker.log")
    launch "$LOG_DIR/worker.log" "$WORKER_PID" \
        "$PREFECT" worker start --pool "$POOL" --name "sentinel42-$(hostname)"
    for _ in $(seq 1 300); do
        tail -c "+$((seen + 1))" "$LOG_DIR/worker.log" 2>/dev/null | grep -q "started!" && break
        alive "$WORKER_PID" || { echo "error: the worker exited; see $LOG_DIR/worker.log" >&2; exit 1; }
        sleep 0.2
    done
fi

for _ in $(seq 1 60); do  # the exporter started before the deployments; wait for it here
    listening "$METRICS_HOST" "$METRICS_PORT" && break
    alive "$METRICS_PID" || { echo "error: the metrics exporter exited; see $LOG_DIR/metrics.log" >&2; exit 1; }
    sleep 1
done
echo "Sentinel42 is up after $(( $(date +%s) - started )) s. Dashboard: http://$HOST:$PORT"
