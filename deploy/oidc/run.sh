#!/usr/bin/env bash
# A real OpenID Provider (panva/oidc-provider on Node.js) for Knowflow's SSO tests.
#
#   run.sh fetch        npm ci (pinned by package-lock.json) into the cache (once per lock)
#   run.sh start        start in the background on 127.0.0.1:$OIDC_PORT, wait until its
#                       discovery document answers (no-op if already up)
#   run.sh stop         stop the provider started by `start`
#   run.sh status       exit 0 if the provider on $OIDC_PORT answers discovery
#   run.sh url          print its issuer URL (what KNOWFLOW_TEST_OIDC_URL is set to)
#   run.sh foreground   run in the foreground (exec)
#
# Env: OIDC_PORT (default 55490), OIDC_DATA (default <repo>/var/oidc, pid and log),
#      KNOWFLOW_CACHE (default ~/.cache/knowflow), OIDC_START_TIMEOUT (default 30 s).
#
# Why: oidc-provider is a certified OpenID Provider library that starts in about a second
# in ~60 MiB, where Keycloak takes tens of seconds and ~1 GiB on our 2-core CI machines.
# node_modules lives in the cache, keyed by the lock file's hash, so the repository holds
# only package.json, package-lock.json and provider.js, and a changed lock reinstalls.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

OIDC_PORT="${OIDC_PORT:-55490}"
DATA_DIR="${OIDC_DATA:-$REPO_ROOT/var/oidc}"
[[ $DATA_DIR = /* ]] || DATA_DIR="$PWD/$DATA_DIR"
LOCK_HASH="$(sha256sum "$SCRIPT_DIR/package-lock.json" | cut -c1-16)"
CACHE_DIR="${KNOWFLOW_CACHE:-$HOME/.cache/knowflow}/oidc"
APP_DIR="$CACHE_DIR/provider-$LOCK_HASH"
START_TIMEOUT="${OIDC_START_TIMEOUT:-30}"
PID_FILE="$DATA_DIR/oidc.pid"
LOG_FILE="$DATA_DIR/oidc.log"
BASE_URL="http://127.0.0.1:$OIDC_PORT"

log() { printf '[oidc] %s\n' "$*" >&2; }
die() { printf '[oidc] ERROR: %s\n' "$*" >&2; exit 1; }

cmd_fetch() {
  if [[ -d $APP_DIR/node_modules/oidc-provider ]]; then
    return 0
  fi
  command -v node >/dev/null || die "node not found (Node.js 20.19+ runs the provider)"
  command -v npm >/dev/null || die "npm not found"
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock 8
  if [[ -d $APP_DIR/node_modules/oidc-provider ]]; then
    exec 8>&-
    return 0
  fi
  # Install beside the target and rename at the end: an interrupted npm ci never leaves a
  # half-filled tree that later runs would take as complete.
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/.install.XXXXXX")
  cp "$SCRIPT_DIR/package.json" "$SCRIPT_DIR/package-lock.json" "$tmp/"
  log "npm ci (oidc-provider, pinned by package-lock.json)"
  local out
  if ! out=$(cd "$tmp" && npm ci --no-audit --no-fund --omit=dev 2>&1); then
    printf '%s\n' "$out" | tail -n 20 >&2
    rm -rf "$tmp"
    die "npm ci failed"
  fi
  mv "$tmp" "$APP_DIR"
  exec 8>&-
  log "installed $APP_DIR"
}

healthy() {
  curl -fsS -m 5 "$BASE_URL/.well-known/openid-configuration" 2>/dev/null \
    | grep -q "\"issuer\":\"$BASE_URL\""
}

port_answers() { curl -s -o /dev/null -m 5 "$BASE_URL/"; }

running_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q provider.js || return 1
  echo "$pid"
}

prepare() {
  cmd_fetch
  mkdir -p "$DATA_DIR"
  [[ -e $DATA_DIR/.gitignore ]] || echo '*' >"$DATA_DIR/.gitignore"
  # The script runs from the cache (where node_modules is); it is copied fresh each start.
  cp "$SCRIPT_DIR/provider.js" "$APP_DIR/provider.js"
  export OIDC_PORT
}

cmd_start() {
  if healthy; then
    log "already up on $BASE_URL"
    return 0
  fi
  local pid
  if pid=$(running_pid); then
    log "already starting (pid $pid); waiting"
  else
    if port_answers; then
      die "port $OIDC_PORT answers but is not our OpenID Provider; stop it or set OIDC_PORT"
    fi
    prepare
    log "starting oidc-provider on $BASE_URL (log $LOG_FILE)"
    (cd "$APP_DIR" && exec setsid node provider.js >>"$LOG_FILE" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$PID_FILE"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "the provider exited during startup (log: $LOG_FILE)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "not answering after ${START_TIMEOUT}s (pid $pid; log: $LOG_FILE)"
    fi
    sleep 0.5
  done
  log "up on $BASE_URL (pid $pid)"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    log "not running ($DATA_DIR)"
    return 0
  fi
  kill -TERM "$pid"
  local _
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

cmd_status() {
  if healthy; then
    log "up on $BASE_URL"
  else
    log "not answering on $BASE_URL"
    return 1
  fi
}

cmd_foreground() {
  if port_answers; then
    die "port $OIDC_PORT is already in use; stop it or set OIDC_PORT"
  fi
  prepare
  cd "$APP_DIR"
  echo "$$" >"$PID_FILE"
  exec node provider.js
}

case "${1:-}" in
  fetch)      cmd_fetch; log "ready: $APP_DIR" ;;
  start)      cmd_start ;;
  stop)       cmd_stop ;;
  status)     cmd_status ;;
  url)        echo "$BASE_URL" ;;
  foreground) cmd_foreground ;;
  *) echo "usage: $0 {fetch|start|stop|status|url|foreground}" >&2; exit 2 ;;
esac
