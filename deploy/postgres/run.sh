#!/usr/bin/env bash
# Throwaway PostgreSQL server for Knowflow tests.
#
#   run.sh install     install Debian's server binaries if missing
#   run.sh start       initdb (once) + start on 127.0.0.1:$PG_PORT, create role/DBs
#   run.sh stop        fast shutdown
#   run.sh status      exit 0 if our cluster is running
#   run.sh url <db>    print the SQLAlchemy/psycopg URL for <db>
#
# Env: PG_PORT (default 55432), PG_DATA (default <repo>/var/postgres).
# We run our own cluster with our own pg_ctl; the Debian "main" cluster and
# pg_ctlcluster/systemd are deliberately not used.
set -euo pipefail

# Created dirs must stay traversable for the postgres user even under umask 077.
umask 022

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
PG_PORT="${PG_PORT:-55432}"
PG_USER_OS=postgres          # OS account that owns/runs the cluster when we are root
PG_SUPER=postgres            # bootstrap superuser inside the cluster
APP_ROLE=knowflow
APP_PASSWORD=knowflow
APP_DBS=(knowflow_identity knowflow_posts knowflow_search knowflow_digests knowflow_notifications knowflow_test)

log() { printf '[pg] %s\n' "$*" >&2; }
die() { printf '[pg] ERROR: %s\n' "$*" >&2; exit 1; }

# Newest /usr/lib/postgresql/<ver>/bin that has a complete server (the client-only
# package also creates that dir, so check for initdb/pg_ctl/postgres explicitly).
find_pg_bin() {
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
      echo "$d"; return 0
    fi
  done
  return 1
}

# Postgres refuses to run as root, so as root we drop to the postgres account.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$PG_USER_OS" -- "$@"
  else
    "$@"
  fi
}

# Nearest existing ancestor of a path (the dir we would mkdir under).
existing_ancestor() {
  local p=$1
  while [[ ! -e $p ]]; do p=$(dirname "$p"); done
  echo "$p"
}

# Data dir must be reachable by the cluster owner. Decided purely from
# permissions (not from what exists) so start/stop/url all agree.
resolve_data_dir() {
  if [[ -n ${PG_DATA:-} ]]; then
    DATA_DIR=$PG_DATA
    FALLBACK_NOTE=""
  else
    DATA_DIR="$REPO_ROOT/var/postgres"
    FALLBACK_NOTE=""
  fi
  [[ $DATA_DIR = /* ]] || DATA_DIR="$PWD/$DATA_DIR"
  if [[ $(id -u) -eq 0 ]]; then
    local anc
    anc=$(existing_ancestor "$DATA_DIR")
    # If the path already exists it must be ours; otherwise the postgres user
    # only needs to traverse down to where root will mkdir + chown.
    if ! runuser -u "$PG_USER_OS" -- test -x "$anc"; then
      local alt="/tmp/knowflow-pg-$PG_PORT"
      FALLBACK_NOTE="$DATA_DIR is not traversable by OS user '$PG_USER_OS'; using $alt instead"
      DATA_DIR=$alt
    fi
  fi
  # Unix socket paths are limited to ~107 bytes; keep it in the data dir when short.
  if (( ${#DATA_DIR} < 80 )); then SOCK_DIR=$DATA_DIR; else SOCK_DIR=/tmp; fi
  LOG_FILE="$DATA_DIR/server.log"
}

# Admin psql over TCP; trust auth, so no password needed.
psql_admin() {
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPER" "$@"
}

cmd_install() {
  if PG_BIN=$(find_pg_bin); then
    log "server binaries already present: $PG_BIN ($("$PG_BIN/postgres" --version))"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "server binaries missing and not root; install package 'postgresql' manually"
  # Stop the package's postinst from creating/starting a Debian "main" cluster
  # on 5432 that we would never use. Only on a fresh machine (postgresql-common
  # not yet configured); --force-confold keeps this file instead of prompting.
  if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  fi
  local apt_opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)
  export DEBIAN_FRONTEND=noninteractive
  log "installing Debian package 'postgresql'"
  # Try with existing package lists first; fresh images often have none/stale ones.
  if ! apt-get install "${apt_opts[@]}" postgresql; then
    log "install failed; running apt-get update and retrying"
    apt-get update -q
    apt-get install "${apt_opts[@]}" postgresql
  fi
  PG_BIN=$(find_pg_bin) || die "postgresql installed but no server binaries found"
  log "installed: $("$PG_BIN/postgres" --version)"
}

require_bin() {
  PG_BIN=$(find_pg_bin) || die "PostgreSQL server binaries not found; run: $0 install"
}

init_cluster() {
  if [[ -f $DATA_DIR/PG_VERSION ]]; then
    return 0
  fi
  if [[ -d $DATA_DIR ]] && [[ -n $(ls -A "$DATA_DIR") ]]; then
    die "$DATA_DIR exists, is not empty and is not a cluster; remove it or set PG_DATA"
  fi
  log "initdb in $DATA_DIR"
  mkdir -p "$DATA_DIR"
  if [[ $(id -u) -eq 0 ]]; then chown "$PG_USER_OS:" "$DATA_DIR"; fi
  chmod 700 "$DATA_DIR"
  # trust for local socket + loopback: test-only server bound to 127.0.0.1.
  # --no-locale/UTF8: deterministic collation independent of installed locales.
  as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U "$PG_SUPER" \
    --auth-local=trust --auth-host=trust -E UTF8 --no-locale >/dev/null
}

is_running() { as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1; }

port_answers() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1; }

ensure_objects() {
  # Role first (DO block is idempotent); CREATE DATABASE cannot run in a DO/txn,
  # hence the \gexec trick that emits only the missing ones.
  local db_list
  db_list=$(printf "'%s'," "${APP_DBS[@]}"); db_list=${db_list%,}
  psql_admin -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
    CREATE ROLE $APP_ROLE LOGIN SUPERUSER PASSWORD '$APP_PASSWORD';
  END IF;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER %I', d, '$APP_ROLE')
FROM unnest(ARRAY[$db_list]) AS d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
SQL
}

cmd_start() {
  require_bin
  resolve_data_dir
  [[ -z $FALLBACK_NOTE ]] || log "$FALLBACK_NOTE"
  # Serialise concurrent starts (e.g. parallel test sessions) per port.
  exec 9>"/tmp/knowflow-pg-$PG_PORT.lock"
  flock 9

  if [[ -f $DATA_DIR/PG_VERSION ]] && is_running; then
    log "already running ($DATA_DIR, port $PG_PORT)"
  else
    if port_answers; then
      die "port $PG_PORT is already served by another PostgreSQL (not $DATA_DIR); set PG_PORT"
    fi
    init_cluster
    log "starting on 127.0.0.1:$PG_PORT (data $DATA_DIR, log $LOG_FILE)"
    # Settings passed on the command line so PG_PORT changes take effect on restart.
    # 9>&- : the postmaster must not inherit the lock fd, or it holds the lock forever.
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$SOCK_DIR" \
        start >/dev/null 9>&-; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "pg_ctl start failed"
    fi
  fi

  local _
  for _ in $(seq 1 60); do
    port_answers && break
    sleep 0.5
  done
  port_answers || die "server not ready on 127.0.0.1:$PG_PORT (see $LOG_FILE)"
  ensure_objects
  log "ready: $(cmd_url postgres)"
}

cmd_stop() {
  require_bin
  resolve_data_dir
  if [[ ! -f $DATA_DIR/PG_VERSION ]] || ! is_running; then
    log "not running ($DATA_DIR)"
    return 0
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null
  log "stopped"
}

cmd_status() {
  require_bin
  resolve_data_dir
  if [[ -f $DATA_DIR/PG_VERSION ]] && is_running && port_answers; then
    log "running: $DATA_DIR on 127.0.0.1:$PG_PORT"
  else
    log "not running ($DATA_DIR)"
    return 1
  fi
}

cmd_url() {
  local db=${1:-}
  [[ -n $db ]] || die "usage: $0 url <db>"
  echo "postgresql+psycopg://$APP_ROLE:$APP_PASSWORD@127.0.0.1:$PG_PORT/$db"
}

case "${1:-}" in
  install) cmd_install ;;
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  status)  cmd_status ;;
  url)     shift; cmd_url "$@" ;;
  *) echo "usage: $0 {install|start|stop|status|url <db>}" >&2; exit 2 ;;
esac
