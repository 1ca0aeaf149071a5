#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, in a temporary directory,
# reachable through a Unix socket in that directory and, for the TLS test,
# on 127.0.0.1 at a port the kernel had free. Source it: it exports
# LATCH_TEST_POSTGRES (a libpq key-value string naming the `postgres`
# database as user `latch`), LATCH_TEST_POSTGRES_URL (the same as a URL),
# LATCH_TEST_POSTGRES_TCP (host:port) and LATCH_TEST_POSTGRES_OWNER (the
# user the server runs as, who must own its TLS key), and registers a trap
# that stops the cluster and removes the directory when the shell exits.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user that Debian's package creates.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (test.sh installs Debian's postgresql)"; return 1; }
pg_dir="$(mktemp -d)"
as_owner=()
pg_owner="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$pg_dir"
  as_owner=(runuser -u postgres --)
  pg_owner=postgres
fi
"${as_owner[@]}" "$pg_bin/initdb" --pgdata "$pg_dir/data" --username latch --auth trust --no-sync >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log"; return 1; }
# PostgreSQL cannot bind port 0: a port the kernel had free is taken, and
# if something else took it meanwhile, the start is tried with another one.
pg_started=""
for _ in 1 2 3 4 5; do
  pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if "${as_owner[@]}" "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --log "$pg_dir/server.log" --wait \
    --options "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200" start >/dev/null; then
    pg_started=yes
    break
  fi
  grep -q "could not bind" "$pg_dir/server.log" || break
done
[ -n "$pg_started" ] || { cat "$pg_dir/server.log"; return 1; }
pg_stop() {
  "${as_owner[@]}" "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --mode immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap pg_stop EXIT
export LATCH_TEST_POSTGRES="host=$pg_dir port=$pg_port user=latch dbname=postgres"
export LATCH_TEST_POSTGRES_TCP="127.0.0.1:$pg_port" LATCH_TEST_POSTGRES_OWNER="$pg_owner"
# The same server as a URL (the socket directory percent-encoded as the host),
# as `--store` takes it; tests replace the database name.
LATCH_TEST_POSTGRES_URL="postgresql://latch@$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$pg_dir"):$pg_port/postgres"
export LATCH_TEST_POSTGRES_URL
