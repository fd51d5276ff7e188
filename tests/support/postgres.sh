#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests, and stops it (and removes its
# directory) when the process that asked for it is gone:
#
#   tests/support/postgres.sh DIR OWNER_PID
#
# DIR: a directory that does not exist yet, under a world-traversable parent such as
# /tmp: the server's data (DIR/data), log (DIR/log) and Unix socket (DIR/.s.PGSQL.5432:
# the port is only the socket's name, there is no TCP listener). OWNER_PID: the process
# whose end stops the server, normally the test process itself.
#
# Prints two lines: the URL of the server's `postgres` database (superuser `postgres`,
# no password, trust over the socket), and the directory of PostgreSQL's programs
# (`createdb -h DIR -p 5432 -U postgres NAME` makes a database):
#
#   postgresql://postgres@%2Ftmp%2Ftoyc-pg-1234:5432/postgres
#   /usr/lib/postgresql/15/bin
#
# As root it runs the server as the `postgres` user (PostgreSQL refuses root).
# Debian's binaries live in /usr/lib/postgresql/N/bin, not on PATH: the newest found
# there is used when `initdb` is not on PATH.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 DIR OWNER_PID" >&2
    exit 2
fi
dir=$1 owner=$2
port=5432

if command -v initdb >/dev/null 2>&1; then
    bin=$(dirname "$(readlink -f "$(command -v initdb)")")
else
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
    echo "postgres.sh: PostgreSQL's initdb/pg_ctl not found: install Debian's \`postgresql\` package (tests/run does)" >&2
    exit 1
fi

mkdir -m 700 "$dir"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as_server() { runuser -u postgres -- "$@"; }
else
    as_server() { "$@"; }
fi

if ! as_server "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    exit 1
fi
# fsync and friends off: the tests' data need not survive a crash of the machine.
if ! as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
    -o "-k $dir -p $port -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >/dev/null 2>&1; then
    cat "$dir/log" >&2 || true
    exit 1
fi

# The watchdog: in its own session, so that the test harness killing the test's
# process group does not take it down before it has stopped the server.
export -f as_server
setsid bash -c '
    owner=$1 bin=$2 dir=$3
    while kill -0 "$owner" 2>/dev/null; do sleep 0.2; done
    as_server "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
' postgres-watchdog "$owner" "$bin" "$dir" </dev/null >/dev/null 2>&1 &

encoded=$(printf '%s' "$dir" | sed 's|%|%25|g; s|/|%2F|g')
echo "postgresql://postgres@$encoded:$port/postgres"
echo "$bin"
