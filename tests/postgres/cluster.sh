#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, in a temporary directory,
# reachable only through a Unix socket in that directory (no port to collide
# with). Source it: it exports LATCH_TEST_POSTGRES (a libpq key-value string
# naming the `postgres` database as user `latch`) and registers a trap that
# stops the cluster and removes the directory when the shell exits.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user that Debian's package creates.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (test.sh installs Debian's postgresql)"; return 1; }
pg_dir="$(mktemp -d)"
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$pg_dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$pg_bin/initdb" --pgdata "$pg_dir/data" --username latch --auth trust --no-sync >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log"; return 1; }
"${as_owner[@]}" "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --log "$pg_dir/server.log" --wait \
  --options "-c listen_addresses='' -k $pg_dir -c max_connections=200" start >/dev/null \
  || { cat "$pg_dir/server.log"; return 1; }
pg_stop() {
  "${as_owner[@]}" "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --mode immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap pg_stop EXIT
export LATCH_TEST_POSTGRES="host=$pg_dir port=5432 user=latch dbname=postgres"
# The same server as a URL (the socket directory percent-encoded as the host),
# as `--store` takes it; tests replace the database name.
LATCH_TEST_POSTGRES_URL="postgresql://latch@$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$pg_dir"):5432/postgres"
export LATCH_TEST_POSTGRES_URL
