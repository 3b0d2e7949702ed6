#!/usr/bin/env bash
# Stop the metrics exporter, the worker and its flow-run processes, then the server that
# start_prefect.sh started (by their recorded pids). Runs in flight end Cancelled first, which
# frees their deployments' concurrency slots for the next start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prefect_env.sh"
GRACE="${SENTINEL42_STOP_GRACE_SECONDS:-20}"  # seconds runs in flight get to end, at each step

# stop NAME PIDFILE SIGNAL...: signal the process group the pid leads (setsid made it a leader,
# so the server's children go too), then wait, escalating.
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

# flow_run_groups [WORKER_PID]: process groups of this server's flow-run processes (by their
# environment) and of the worker's descendants. Prefect starts each flow run in a session of
# its own, so a signal to the worker's group misses it.
flow_run_groups() {
    "$CLI" runs processes --groups ${1:+--worker-pid "$1"} 2>/dev/null || true
}

# stop_groups PGID...: SIGTERM each group still alive, SIGKILL what is left after GRACE seconds.
stop_groups() {
    local g left groups=()
    for g in "$@"; do kill -0 -- "-$g" 2>/dev/null && groups+=("$g"); done
    [ ${#groups[@]} -gt 0 ] || return 0
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for _ in $(seq 1 $((GRACE * 2))); do
        left=0
        for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.5
    done
    for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    echo "flow-run processes stopped (process groups ${groups[*]})"
}

stop "metrics exporter" "$METRICS_PID" TERM
worker=""
if alive "$WORKER_PID"; then worker="$(cat "$WORKER_PID")"; fi
before="$(flow_run_groups "$worker")"
# A stop, not a crash: the runs in flight end Cancelled (no failure alert) while the server is
# up. A live worker is asked first (as the dashboard's Cancel does): it stops their processes
# gracefully; what is left after GRACE seconds is marked Cancelled. Ending a run gives its
# deployment's concurrency slot back. What had died before the stop (a subflow run whose parent
# ended, a run with no process: --crash-gone, as nothing was stopped yet) ends Crashed.
if healthy; then
    "$CLI" runs cleanup --stopping --crash-gone ${worker:+--wait-seconds "$GRACE"} \
        || echo "warning: the runs in flight were not ended; 'make prefect-start' will end them" >&2
fi
# The worker needs a second SIGINT to stop promptly (see docs/operations.md).
stop worker "$WORKER_PID" INT INT TERM
after="$(flow_run_groups)"  # flow-run processes still alive, whoever started them
# shellcheck disable=SC2086  # one process group id per word
stop_groups $(printf '%s\n' $before $after | sort -un)
if [ -n "$after" ] && healthy; then
    "$CLI" runs cleanup --stopping || true  # the runs of the processes just stopped
fi
stop server "$SERVER_PID" TERM
