#!/usr/bin/env bash
# Print whether the server, worker and metrics exporter run, the server's health, the deployments.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prefect_env.sh"
rc=0
if alive "$SERVER_PID"; then echo "server: running (pid $(cat "$SERVER_PID"))"; else echo "server: stopped"; rc=1; fi
if alive "$WORKER_PID"; then echo "worker: running (pid $(cat "$WORKER_PID"))"; else echo "worker: stopped"; rc=1; fi
if alive "$METRICS_PID"; then
    echo "metrics: running (pid $(cat "$METRICS_PID")) at http://$METRICS_HOST:$METRICS_PORT/metrics"
else
    echo "metrics: stopped"; rc=1
fi
if healthy; then
    echo "api:    healthy at $PREFECT_API_URL"
    echo "dashboard: http://$HOST:$PORT"
    COLUMNS=200 "$PREFECT" deployment ls 2>/dev/null | grep -E "production|Name" || true
else
    echo "api:    not answering at $PREFECT_API_URL"; rc=1
fi
echo "logs: $LOG_DIR   pids: $RUN_DIR"
exit $rc
