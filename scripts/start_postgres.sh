#!/usr/bin/env bash
# A throw-away PostgreSQL server for an MLflow backend store, e.g. for tests.
#
#   scripts/start_postgres.sh DATA_DIR PORT   initialise (once) and start a cluster in DATA_DIR,
#                                             listening only on 127.0.0.1:PORT; creates role and
#                                             database `mlflow` (password `mlflow`) and prints
#                                             postgresql://mlflow:mlflow@127.0.0.1:PORT/mlflow
#   scripts/start_postgres.sh stop DATA_DIR   stop that server (no-op when it is not running)
#
# Layout: DATA_DIR/pgdata (cluster), DATA_DIR/socket (unix socket), DATA_DIR/postgres.log.
# As root, the server runs as the `postgres` OS user (initdb refuses root): DATA_DIR is chowned
# to it, so its parent folders must be traversable by that user (e.g. a folder under /tmp).
# PG_BIN overrides the binaries' folder (default: the newest /usr/lib/postgresql/*/bin).
# Only the URI goes to stdout; progress and errors go to stderr.
set -euo pipefail

usage() {
  echo "usage: $0 DATA_DIR PORT | $0 stop DATA_DIR" >&2
  exit 2
}

die() {
  echo "error: $*" >&2
  exit 1
}

pg_bindir() {
  if [ -n "${PG_BIN:-}" ]; then
    [ -x "$PG_BIN/initdb" ] || die "PG_BIN=$PG_BIN has no initdb"
    printf '%s' "$PG_BIN"
    return
  fi
  local candidate found=""
  for candidate in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$candidate" ] && found="$found$candidate"$'\n'
  done
  found="$(printf '%s' "$found" | sort -V | tail -n 1)"
  if [ -z "$found" ] && command -v initdb >/dev/null 2>&1; then
    found="$(command -v initdb)"
  fi
  [ -n "$found" ] || die "PostgreSQL not found; run scripts/ensure_postgres.sh (or set PG_BIN)"
  dirname "$found"
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

[ $# -eq 2 ] || usage
if [ "$1" = "stop" ]; then
  mode=stop
  data_dir="$2"
else
  mode=start
  data_dir="$1"
  port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
    die "PORT must be a number in 1-65535, got '$port'"
fi

bin="$(pg_bindir)"
data_dir="$(realpath -m -- "$data_dir")"
pgdata="$data_dir/pgdata"
socket_dir="$data_dir/socket"
log_file="$data_dir/postgres.log"
cd /  # the owner may not be allowed into the caller's working directory

if [ "$mode" = stop ]; then
  if [ -f "$pgdata/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null ||
      die "pg_ctl stop failed (log: $log_file)"
    echo "PostgreSQL in $pgdata stopped" >&2
  fi
  exit 0
fi

# A unix socket path is limited to 107 bytes.
[ "${#socket_dir}" -le 80 ] || die "DATA_DIR is too long for a unix socket path: $data_dir"

mkdir -p "$data_dir"
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (is Debian's postgresql installed?)"
  chown postgres: "$data_dir"
  as_owner test -w "$data_dir" -a -x "$data_dir" ||
    die "user postgres cannot write $data_dir: make its parent folders traversable (chmod o+x)"
fi
as_owner mkdir -p "$socket_dir"
chmod 700 "$data_dir" 2>/dev/null || true

if [ ! -f "$pgdata/PG_VERSION" ]; then
  echo "initialising a PostgreSQL cluster in $pgdata" >&2
  as_owner "$bin/initdb" -D "$pgdata" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$data_dir/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 5 "$data_dir/initdb.log")"
  echo "include_if_exists = 'ser_listen.conf'" | as_owner tee -a "$pgdata/postgresql.conf" >/dev/null
fi

if as_owner "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  echo "PostgreSQL already running in $pgdata" >&2
else
  as_owner tee "$pgdata/ser_listen.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$socket_dir'
EOF
  as_owner "$bin/pg_ctl" -D "$pgdata" -l "$log_file" -w -t 120 start >/dev/null ||
    die "PostgreSQL did not start on 127.0.0.1:$port: $(tail -n 5 "$log_file" 2>/dev/null)"
fi

# The port actually in use (an already running server keeps the one it started with).
live_port="$(sed -n 4p "$pgdata/postmaster.pid")"
[ "$live_port" = "$port" ] || die "PostgreSQL in $pgdata is already running on port $live_port"

psql_su() {
  as_owner "$bin/psql" -h "$socket_dir" -p "$port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -qAtX "$@"
}
if [ -z "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'")" ]; then
  psql_su -c "CREATE ROLE mlflow LOGIN PASSWORD 'mlflow'" >/dev/null
fi
if [ -z "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'mlflow'")" ]; then
  psql_su -c "CREATE DATABASE mlflow OWNER mlflow" >/dev/null
fi

echo "postgresql://mlflow:mlflow@127.0.0.1:$port/mlflow"
