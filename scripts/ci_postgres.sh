#!/usr/bin/env bash
# A private PostgreSQL server for the PostgreSQL tests (CI, or a laptop), started on demand.
#
#   eval "$(bash scripts/ci_postgres.sh)"     # install if missing, start, print the URLs
#   bash scripts/ci_postgres.sh stop           # stop it (add --purge to delete its files)
#
# Installs Debian's `postgresql` package when no PostgreSQL server binaries are found (as root, or
# through passwordless sudo), then runs its own cluster under SENTINEL42_CI_POSTGRES_DIR (default
# ${TMPDIR:-/tmp}/sentinel42-ci-postgres), owned by the `postgres` user when run as root. It listens
# on 127.0.0.1 only, on a free port, and asks for a password there; its Unix socket sits in that
# private folder. It never touches the Debian default cluster or anyone else's server.
#
# Idempotent: a second call finds the cluster running (or starts it again) and prints the same
# lines. Creates the roles and databases `sentinel42_test` (the store's tests) and `prefect_test`
# (a Prefect server; pg_trgm enabled), both roles with CREATEDB, so tests make a fresh database
# each and drop it afterwards. Prints only `export` lines on stdout (progress goes to stderr):
#   SENTINEL42_TEST_POSTGRES_URL          postgresql+psycopg://sentinel42_test:...@127.0.0.1:PORT/sentinel42_test
#   SENTINEL42_TEST_PREFECT_POSTGRES_URL  postgresql+asyncpg://prefect_test:...@127.0.0.1:PORT/prefect_test
#   SENTINEL42_TEST_POSTGRES_REQUIRED=1   the PostgreSQL tests fail instead of skipping without a URL
#   SENTINEL42_CI_POSTGRES_DIR            where the cluster lives (for `stop`)
set -euo pipefail

DIR="${SENTINEL42_CI_POSTGRES_DIR:-${TMPDIR:-/tmp}/sentinel42-ci-postgres}"
DATA="$DIR/data"
LOG="$DIR/postgres.log"
ACTION="${1:-start}"

say() { echo "ci_postgres: $*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {  # as_root CMD...: run a command as root (directly, or through passwordless sudo)
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "PostgreSQL is not installed and this user cannot install it; run as root, or install it (Debian: apt-get install postgresql) and retry"
    fi
}

find_bindir() {  # the folder holding initdb and pg_ctl of the newest installed server
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [ "$ACTION" = start ] && [ -z "$BINDIR" ]; then
    say "no PostgreSQL server found: installing Debian's postgresql package"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)" || die "installed postgresql, but found no initdb/pg_ctl"
fi

# As root the cluster belongs to `postgres` (initdb refuses root); otherwise to this user.
if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    id "$OWNER" >/dev/null 2>&1 || useradd --system --user-group --home-dir "$DIR" --shell /bin/sh "$OWNER"
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER="$(id -un)"
    as_owner() { "$@"; }
fi

running() { [ -n "$BINDIR" ] && [ -f "$DATA/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

if [ "$ACTION" = stop ]; then
    if running; then
        as_owner "$BINDIR/pg_ctl" -D "$DATA" stop -m fast -w >&2
        say "stopped the cluster in $DIR"
    else
        say "no cluster running in $DIR"
    fi
    if [ "${2:-}" = --purge ]; then
        rm -rf "$DIR"
        say "removed $DIR"
    fi
    exit 0
fi
[ "$ACTION" = start ] || die "usage: $0 [start|stop [--purge]]"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {  # a TCP port nothing listens on, starting at a random point of 50000-59999
    local port=$((50000 + RANDOM % 10000)) i
    for ((i = 0; i < 200; i++)); do
        listening "$port" || { echo "$port"; return 0; }
        port=$((port + 1))
    done
    die "found no free local port"
}

mkdir -p "$DIR"
chmod 700 "$DIR"
if [ "$(id -u)" = 0 ]; then chown "$OWNER": "$DIR"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    say "creating a cluster in $DATA ($("$BINDIR/postgres" --version))"
    # The socket folder is private (0700), so `trust` there reaches only its owner (and root);
    # TCP on 127.0.0.1 needs a password.
    as_owner "$BINDIR/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
fi
if [ ! -s "$DIR/password" ]; then
    # URL-safe: letters and digits only.
    (umask 077 && head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$DIR/password")
fi
PASSWORD="$(cat "$DIR/password")"

if running; then
    PORT="$(cat "$DIR/port")"
    say "cluster in $DIR already running on 127.0.0.1:$PORT"
else
    PORT="$(cat "$DIR/port" 2>/dev/null || true)"
    if [ -z "$PORT" ] || listening "$PORT"; then
        PORT="$(free_port)"
    fi
    echo "$PORT" >"$DIR/port"
    say "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOG)"
    # Several flow runs, two workers, a Prefect server and the tests' processes at once.
    as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200 -c fsync=off -c full_page_writes=off" >&2 \
        || { tail -n 20 "$LOG" >&2 || true; die "PostgreSQL did not start; see $LOG"; }
fi

psql_admin() {  # psql_admin DB: SQL on stdin, as the cluster's superuser over the private socket
    as_owner env PGOPTIONS='-c client_min_messages=warning' "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$1" >&2
}

psql_admin postgres <<SQL
DO \$\$
DECLARE role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['sentinel42_test', 'prefect_test'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', role_name, '$PASSWORD');
        ELSE
            EXECUTE format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', role_name, '$PASSWORD');
        END IF;
    END LOOP;
END
\$\$;
-- DROP DATABASE ... WITH (FORCE) of a test database must also end an autovacuum worker there.
GRANT pg_signal_backend TO sentinel42_test, prefect_test;
SELECT 'CREATE DATABASE sentinel42_test OWNER sentinel42_test'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sentinel42_test') \gexec
SELECT 'CREATE DATABASE prefect_test OWNER prefect_test'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'prefect_test') \gexec
SQL
# Prefect's migrations create pg_trgm themselves; enabling it here as the superuser also works
# where the extension is not trusted (PostgreSQL before 13).
psql_admin prefect_test <<<"CREATE EXTENSION IF NOT EXISTS pg_trgm;"
say "ready: roles and databases sentinel42_test, prefect_test (pg_trgm) on 127.0.0.1:$PORT"

echo "export SENTINEL42_TEST_POSTGRES_URL='postgresql+psycopg://sentinel42_test:$PASSWORD@127.0.0.1:$PORT/sentinel42_test'"
echo "export SENTINEL42_TEST_PREFECT_POSTGRES_URL='postgresql+asyncpg://prefect_test:$PASSWORD@127.0.0.1:$PORT/prefect_test'"
echo "export SENTINEL42_TEST_POSTGRES_REQUIRED=1"
echo "export SENTINEL42_CI_POSTGRES_DIR='$DIR'"
