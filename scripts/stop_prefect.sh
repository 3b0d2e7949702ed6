#!/usr/bin/env bash
# Stop the metrics exporter, the worker, then the server that start_prefect.sh started (by their
# recorded pids).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prefect_env.sh"

# stop NAME PIDFILE SIGNAL...: signal the process group the pid leads (setsid made it a leader,
# so flow-run subprocesses and the server's children go too), then wait, escalating.
stop() {
    local name="$1" pidfile="$2"; shift 2
    if ! alive "$pidfile"; then
        [ -f "$pidfile" ] && echo "$name was not running (stale pid file removed)"
        rm -f "$pidfile"
        return 0
    fi
    local pid; pid="$(cat "$pidfile")"
    local tries=4  # the first signal gets 2 s, later ones 15 s
    for sig in "$@" KILL; do
        kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
        for _ in $(seq 1 "$tries"); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        tries=30
        kill -0 "$pid" 2>/dev/null || break
    done
    # Children that outlived their leader (same process group) are ours too.
    pkill -KILL -g "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "$name stopped (pid $pid)"
}

stop "metrics exporter" "$METRICS_PID" TERM
# The worker needs a second SIGINT to stop promptly (see docs/operations.md).
stop worker "$WORKER_PID" INT INT TERM
stop server "$SERVER_PID" TERM
