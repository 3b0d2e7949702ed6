#!/usr/bin/env bash
# Render Sentinel42's systemd units (deploy/systemd/) for this checkout and install them.
#
#   scripts/install_systemd.sh [USER]            system units, run as USER (default: the checkout's
#                                                owner); installs with sudo unless run as root
#   scripts/install_systemd.sh --user            per-user units (~/.config/systemd/user), no root
#   scripts/install_systemd.sh --render DIR      only write the rendered units into DIR
#   scripts/install_systemd.sh --print           only print them
#   scripts/install_systemd.sh --uninstall       stop, disable and remove them (with --user: yours)
#   --no-start                                   install and enable, but do not (re)start
#
# Rendering is sed only: this script never runs the checkout's Python, so running it as root
# runs no code the checkout's owner can change (read it before you run it as root). The settings
# it needs come from the environment, then the EnvironmentFile, then the checkout's .env:
# SENTINEL42_DATA_DIR (default <checkout>/data), SENTINEL42_PREFECT_RUN_RETENTION_DAYS (30),
# SENTINEL42_PREFECT_HOST (127.0.0.1), SENTINEL42_PREFECT_PORT (4200), SENTINEL42_ENV_FILE
# (the EnvironmentFile for secrets; default /etc/sentinel42/sentinel42.env, with --user
# ~/.config/sentinel42/env).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES="$ROOT/deploy/systemd"
UNITS=(sentinel42.target sentinel42-server.service sentinel42-worker.service sentinel42-metrics.service)
MODE=install USER_MODE=0 START=1 OUT="" RUN_AS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --user) USER_MODE=1 ;;
        --print) MODE=print ;;
        --render) MODE=render; OUT="${2:?--render needs a directory}"; shift ;;
        --uninstall) MODE=uninstall ;;
        --no-start) START=0 ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) RUN_AS="$1" ;;
    esac
    shift
done
die() { echo "error: $*" >&2; exit 2; }

# --- where the units go and who runs them ---------------------------------------------------
if [ "$USER_MODE" = 1 ]; then
    [ "$(id -u)" != 0 ] || [ "$MODE" = render ] || [ "$MODE" = print ] \
        || die "--user installs your own units: run it as that user, not as root"
    RUN_AS="${RUN_AS:-$(id -un)}"
    DEST="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
    SYSTEMCTL=(systemctl --user)
    SUDO=()
    DEFAULT_ENV_FILE="${XDG_CONFIG_HOME:-$HOME/.config}/sentinel42/env"
    WANTED_BY=default.target
else
    RUN_AS="${RUN_AS:-$(stat -c %U "$ROOT")}"
    DEST=/etc/systemd/system
    SYSTEMCTL=(systemctl)
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    DEFAULT_ENV_FILE=/etc/sentinel42/sentinel42.env
    WANTED_BY=multi-user.target
fi

if [ "$MODE" = uninstall ]; then
    "${SUDO[@]}" "${SYSTEMCTL[@]}" disable --now "${UNITS[@]}" 2>/dev/null || true
    for unit in "${UNITS[@]}"; do "${SUDO[@]}" rm -f "$DEST/$unit"; done
    "${SUDO[@]}" "${SYSTEMCTL[@]}" daemon-reload
    echo "removed ${UNITS[*]} from $DEST (the data directory and the EnvironmentFile stay)"
    exit 0
fi

[[ "$RUN_AS" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "$RUN_AS is not a user name"
[ "$USER_MODE" = 1 ] || [ "$RUN_AS" != root ] \
    || die "the services would run as root; give the user that owns the checkout (or --user)"
RUN_HOME="$(getent passwd "$RUN_AS" | cut -d: -f6)" || die "no user $RUN_AS"

# setting NAME DEFAULT: $NAME from the environment, else the EnvironmentFile, else .env
setting() {
    local name="$1" fallback="$2" file line value=""
    if [ -n "${!name:-}" ]; then printf '%s\n' "${!name}"; return; fi
    for file in "${ENV_FILE:-}" "$ROOT/.env"; do
        [ -n "$file" ] && [ -r "$file" ] || continue
        line="$(grep -E "^[[:space:]]*(export[[:space:]]+)?$name=" "$file" | tail -n 1)" || continue
        value="${line#*=}"
        value="${value%\"}" value="${value#\"}" value="${value%\'}" value="${value#\'}"
        printf '%s\n' "$value"
        return
    done
    printf '%s\n' "$fallback"
}
ENV_FILE="${SENTINEL42_ENV_FILE:-$DEFAULT_ENV_FILE}"
DATA_DIR="$(setting SENTINEL42_DATA_DIR "$ROOT/data")"
case "$DATA_DIR" in /*) ;; *) DATA_DIR="$ROOT/$DATA_DIR" ;; esac  # as the units' working dir
DATA_DIR="${DATA_DIR%/}"
RETENTION_DAYS="$(setting SENTINEL42_PREFECT_RUN_RETENTION_DAYS 30)"
HOST="${SENTINEL42_PREFECT_HOST:-127.0.0.1}"
PORT="${SENTINEL42_PREFECT_PORT:-4200}"
CACHE_DIR="$RUN_HOME/.cache"

# Values go into unit files: no spaces, quotes or systemd specifiers (%), nothing sed would read.
for path in "$ROOT" "$DATA_DIR" "$ENV_FILE" "$CACHE_DIR"; do
    [[ "$path" =~ ^/[A-Za-z0-9._/+@-]*$ ]] || die "path '$path' has characters a unit file cannot hold"
done
[[ "$HOST" =~ ^[A-Za-z0-9.:-]+$ ]] || die "SENTINEL42_PREFECT_HOST: '$HOST' is not a host"
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] \
    || die "SENTINEL42_PREFECT_PORT: '$PORT' is not a port (1-65535)"
[[ "$RETENTION_DAYS" =~ ^[0-9]+$ ]] && [ "$RETENTION_DAYS" -ge 1 ] && [ "$RETENTION_DAYS" -le 3650 ] \
    || die "SENTINEL42_PREFECT_RUN_RETENTION_DAYS: '$RETENTION_DAYS' is not 1 to 3650"
# ProtectHome=yes hides /home, /root and /run/user; read-only keeps what lives there reachable.
PROTECT_HOME=yes
for path in "$ROOT" "$DATA_DIR" "$CACHE_DIR"; do
    case "$path/" in /home/* | /root/* | /run/user/*) PROTECT_HOME=read-only ;; esac
done

render() {  # render TEMPLATE: the unit on stdout
    local script=(
        -e "s|@USER@|$RUN_AS|g" -e "s|@ROOT@|$ROOT|g" -e "s|@DATA_DIR@|$DATA_DIR|g"
        -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$PORT|g" -e "s|@ENV_FILE@|$ENV_FILE|g"
        -e "s|@CACHE_DIR@|$CACHE_DIR|g" -e "s|@PROTECT_HOME@|$PROTECT_HOME|g"
        -e "s|@RUN_RETENTION_SECONDS@|$((RETENTION_DAYS * 86400))|g"
        -e "s|@WANTED_BY@|$WANTED_BY|g"
    )
    if [ "$USER_MODE" = 1 ]; then  # a user manager has no User=, no network-online.target, and
        # its sandboxing needs unprivileged user namespaces, which some distributions restrict
        script+=(-e '/^User=/d' -e '/network-online\.target/d'
            -e '/^# --- sandbox/,/^# --- end sandbox ---$/d')
    fi
    sed "${script[@]}" "$1"
}

# The templates sit in a checkout its owner can change: refuse anything that would give the
# services more than that owner's rights.
check() {  # check UNIT FILE
    local unit="$1" file="$2" bad
    bad="$(grep -nE '^(Group|SupplementaryGroups|DynamicUser|AmbientCapabilities|CapabilityBoundingSet|PermissionsStartOnly|RootDirectory|RootImage|BindPaths|BindReadOnlyPaths|LoadCredential|LoadCredentialEncrypted|SetCredential|ExecSearchPath|PAMName|Delegate)=|^Exec[A-Za-z]*=[-@:]*[+!]|@[A-Z_]+@' "$file" || true)"
    [ -z "$bad" ] || die "$unit: refusing to install these lines: $bad"
    case "$unit" in
        *.service)
            if [ "$USER_MODE" = 1 ]; then
                ! grep -q '^User=' "$file" || die "$unit: a user unit cannot set User="
            else
                [ "$(grep -c '^User=' "$file")" = 1 ] && grep -qx "User=$RUN_AS" "$file" \
                    || die "$unit: it must run as User=$RUN_AS, once"
            fi
            ;;
    esac
}

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
for unit in "${UNITS[@]}"; do
    [ -f "$TEMPLATES/$unit" ] || die "missing template $TEMPLATES/$unit"
    render "$TEMPLATES/$unit" >"$STAGE/$unit"
    check "$unit" "$STAGE/$unit"
done

case "$MODE" in
    print)
        for unit in "${UNITS[@]}"; do printf '### %s\n' "$unit"; cat "$STAGE/$unit"; echo; done
        exit 0
        ;;
    render)
        mkdir -p "$OUT"
        for unit in "${UNITS[@]}"; do install -m 0644 "$STAGE/$unit" "$OUT/$unit"; done
        echo "rendered ${UNITS[*]} into $OUT"
        exit 0
        ;;
esac

# --- install -----------------------------------------------------------------------------------
[ -x "$ROOT/.venv/bin/prefect" ] || die "no $ROOT/.venv: run 'make install' as $RUN_AS first"
if [ "$(id -un)" = "$RUN_AS" ]; then
    mkdir -p "$DATA_DIR"
else  # the data directory belongs to the service user: create it as that user
    "${SUDO[@]}" runuser -u "$RUN_AS" -- mkdir -p "$DATA_DIR"
fi
if [ ! -e "$ENV_FILE" ]; then  # an empty secrets file, readable by its owner only
    "${SUDO[@]}" install -d -m 0755 "$(dirname "$ENV_FILE")"
    "${SUDO[@]}" install -m 0600 /dev/null "$ENV_FILE"
    echo "created $ENV_FILE (mode 0600): put secrets there as KEY=value lines"
fi
"${SUDO[@]}" install -d -m 0755 "$DEST"
for unit in "${UNITS[@]}"; do
    "${SUDO[@]}" install -m 0644 "$STAGE/$unit" "$DEST/$unit"
    echo "installed $DEST/$unit"
done
"${SUDO[@]}" "${SYSTEMCTL[@]}" daemon-reload
# reenable: units installed by an older version were wanted by multi-user.target directly.
"${SUDO[@]}" "${SYSTEMCTL[@]}" reenable "${UNITS[@]}" >/dev/null
if [ "$START" = 1 ]; then
    "${SUDO[@]}" "${SYSTEMCTL[@]}" restart sentinel42.target
    echo "started; check with: ${SYSTEMCTL[*]} status 'sentinel42*'"
else
    echo "enabled (not started): ${SYSTEMCTL[*]} start sentinel42.target"
fi
if [ "$USER_MODE" = 1 ]; then
    echo "to start at boot without logging in: sudo loginctl enable-linger $RUN_AS"
fi
