#!/usr/bin/env bash
# Install Sentinel42's systemd units for this checkout and user, then enable and start them.
#   sudo scripts/install_systemd.sh [USER]      (default: the user who owns the checkout)
# Print the units without installing: scripts/install_systemd.sh --print [USER]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRINT=0
if [ "${1:-}" = "--print" ]; then PRINT=1; shift; fi
RUN_AS="${1:-$(stat -c %U "$ROOT")}"
DATA_DIR="$("$ROOT/.venv/bin/python" -c 'from sentinel42.settings import load_settings; print(load_settings(require_replay_dir=False).data_dir)')"
for unit in sentinel42-server.service sentinel42-worker.service; do
    rendered="$(sed -e "s|@USER@|$RUN_AS|g" -e "s|@ROOT@|$ROOT|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
        "$ROOT/deploy/systemd/$unit")"
    if [ "$PRINT" = 1 ]; then
        printf '### %s\n%s\n\n' "$unit" "$rendered"
    else
        printf '%s\n' "$rendered" >"/etc/systemd/system/$unit"
        echo "installed /etc/systemd/system/$unit"
    fi
done
if [ "$PRINT" = 0 ]; then
    systemctl daemon-reload
    systemctl enable --now sentinel42-server.service sentinel42-worker.service
    echo "enabled; check with: systemctl status sentinel42-server sentinel42-worker"
fi
