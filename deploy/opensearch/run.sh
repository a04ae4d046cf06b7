#!/usr/bin/env bash
# Single-node OpenSearch for Knowflow tests and development.
#
#   run.sh fetch        download + unzip the distribution into the cache (once)
#   run.sh start        start in the background on 127.0.0.1:$OPENSEARCH_PORT, wait
#                       until cluster health is green/yellow (no-op if already up)
#   run.sh stop         stop the node started by `start`/`foreground`
#   run.sh status       exit 0 if the node on $OPENSEARCH_PORT is healthy
#   run.sh foreground   run in the foreground (exec), for `make run`-style use
#
# Env: OPENSEARCH_VERSION (default 3.8.0), OPENSEARCH_PORT (default 9200),
#      OPENSEARCH_DATA (default <repo>/var/opensearch), KNOWFLOW_CACHE
#      (default ~/.cache/knowflow), OPENSEARCH_JAVA_HOME (default: first JDK
#      that fits the version), OPENSEARCH_JAVA_OPTS (default 512 MiB heap),
#      OPENSEARCH_START_TIMEOUT (seconds, default 180).
#
# Why these choices:
# - The integ-test zip from Maven Central is used because Maven Central is a
#   registry every Knowflow machine (dev and CI) reaches; the artifacts site
#   that hosts the full tarball is not. That zip has no security plugin (plain
#   HTTP, no auth) and no bundled JDK, so we pick a JDK ourselves.
# - 3.8.0 is the newest 3.x whose integ-test zip is on Maven Central when this
#   was written (3.9.0 and 3.6.1 are absent; 3.3.2, 3.6.0, 3.7.0 exist). The
#   repository's maven-metadata.xml is incomplete (lists 3.6.0 as latest, omits
#   3.3.2/3.7.0/3.8.0), so probe versions directly rather than trusting RELEASE.
#   3.x needs Java 21+; it runs on the Temurin 25 JDK. No fallback was needed,
#   but OPENSEARCH_VERSION=2.19.6 also works (it picks Java 17, see pick_java).
# - OpenSearch refuses to start as root ("can not run opensearch as root"), and
#   our dev machines and CI run as root. As root we therefore start it inside
#   a fresh user namespace (`unshare --user`): the JVM sees itself as uid 65534
#   with no capabilities, while the files it creates stay owned by root on
#   disk. That avoids creating an OS account and chown-ing the data dir, and
#   works although the cache lives under /root (mode 700).
# - Nothing inside the cache is written: config is copied to the data dir
#   (OPENSEARCH_PATH_CONF), and logs, GC log, crash files and tmp go there too,
#   so several nodes (ports/data dirs) can share one unpacked distribution.
# - A data dir written by one major version cannot be opened by an older one:
#   use a separate OPENSEARCH_DATA when switching versions down.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

OS_VERSION="${OPENSEARCH_VERSION:-3.8.0}"
OS_PORT="${OPENSEARCH_PORT:-9200}"
DATA_DIR="${OPENSEARCH_DATA:-$REPO_ROOT/var/opensearch}"
[[ $DATA_DIR = /* ]] || DATA_DIR="$PWD/$DATA_DIR"
CACHE_DIR="${KNOWFLOW_CACHE:-$HOME/.cache/knowflow}/opensearch"
OS_HOME="$CACHE_DIR/opensearch-$OS_VERSION"
START_TIMEOUT="${OPENSEARCH_START_TIMEOUT:-180}"
PID_FILE="$DATA_DIR/opensearch.pid"
LOG_FILE="$DATA_DIR/opensearch.log"
BASE_URL="http://127.0.0.1:$OS_PORT"

log() { printf '[opensearch] %s\n' "$*" >&2; }
die() { printf '[opensearch] ERROR: %s\n' "$*" >&2; exit 1; }

cmd_fetch() {
  if [[ -x $OS_HOME/bin/opensearch ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to fetch from Maven Central)"
  command -v unzip >/dev/null || die "unzip not found"
  mkdir -p "$CACHE_DIR"
  # Parallel test sessions may all call start at once; only one downloads.
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock 8
  if [[ -x $OS_HOME/bin/opensearch ]]; then
    exec 8>&-
    return 0
  fi
  local zip="$CACHE_DIR/opensearch-$OS_VERSION.zip"
  if [[ ! -s $zip ]]; then
    log "fetching org.opensearch.distribution.integ-test-zip:opensearch:$OS_VERSION from Maven Central"
    # Run from the cache dir so a pom.xml in the caller's cwd cannot interfere.
    # Output is shown only on failure: even -q -B leaves stray ANSI resets.
    local out
    if ! out=$(cd "$CACHE_DIR" && mvn -q -B -Dstyle.color=never dependency:copy \
        "-Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:$OS_VERSION:zip" \
        "-DoutputDirectory=$CACHE_DIR" 2>&1); then
      printf '%s\n' "$out" | tail -n 20 >&2
      die "could not fetch OpenSearch $OS_VERSION (is that version's integ-test zip on Maven Central?)"
    fi
  fi
  # Unpack beside the target and rename at the end, so an interrupted unzip
  # never leaves a half-filled tree that later runs would take as complete.
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/.unzip.XXXXXX")
  unzip -q "$zip" -d "$tmp"
  [[ -x $tmp/opensearch-$OS_VERSION/bin/opensearch ]] || die "unexpected layout in $zip"
  mv "$tmp/opensearch-$OS_VERSION" "$OS_HOME"
  rm -rf "$tmp"
  # Maven keeps its own copy in ~/.m2, so the zip here is redundant once unpacked.
  rm -f "$zip"
  exec 8>&-
  log "unpacked $OS_HOME"
}

# Major Java version of a JDK home ("17", "25", ...), empty if unusable.
java_major() {
  [[ -x $1/bin/java ]] || return 0
  "$1/bin/java" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1
}

# OPENSEARCH_JAVA_HOME wins as given; otherwise the first JDK that fits this
# OpenSearch major, trying JAVA_HOME, the Temurin 25 JDK of our machines, then
# anything else under /usr/lib/jvm, newest first. 3.x needs 21+. 2.x supports
# 11-21 only: it relies on the SecurityManager, which Java 24 removed.
pick_java() {
  if [[ -n ${OPENSEARCH_JAVA_HOME:-} ]]; then
    JAVA_DIR=$OPENSEARCH_JAVA_HOME
    return 0
  fi
  local min=11 max=21 cand major
  if [[ ${OS_VERSION%%.*} -ge 3 ]]; then min=21; max=999; fi
  for cand in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/temurin-25-jdk-amd64 \
      $(printf '%s\n' /usr/lib/jvm/* | sort -V -r); do
    major=$(java_major "$cand")
    if [[ -n $major ]] && (( major >= min && major <= max )); then
      JAVA_DIR=$cand
      return 0
    fi
  done
  die "no JDK $min..$max found for OpenSearch $OS_VERSION; set OPENSEARCH_JAVA_HOME"
}

healthy() {
  curl -fsS -m 5 "$BASE_URL/_cluster/health" 2>/dev/null \
    | grep -Eq '"status" *: *"(green|yellow)"'
}

# Something (anything) answers HTTP on the port.
port_answers() { curl -s -o /dev/null -m 5 "$BASE_URL/"; }

# PID from the pid file if that process is still our node. The cmdline check
# guards against a stale pid file whose pid was reused by something else.
running_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
    | grep -q -e org.opensearch.bootstrap -e /bin/opensearch || return 1
  echo "$pid"
}

# Builds the environment and argv shared by `start` and `foreground`.
prepare() {
  cmd_fetch
  pick_java
  mkdir -p "$DATA_DIR/data" "$DATA_DIR/logs" "$DATA_DIR/tmp"
  # The default data dir sits inside the repo; keep it out of git whatever
  # the repo's own ignore rules say.
  [[ -e $DATA_DIR/.gitignore ]] || echo '*' >"$DATA_DIR/.gitignore"
  # Fresh copy each start: the distribution's defaults, never edited in place.
  rm -rf "$DATA_DIR/config"
  cp -R "$OS_HOME/config" "$DATA_DIR/config"
  # jvm.options puts the GC log, crash logs and heap dumps at paths relative to
  # the install dir (the launcher cd's there). Point them at the data dir in
  # our copy; JVM flags appended via OPENSEARCH_JAVA_OPTS could not do this, as
  # the JVM already creates the first -Xlog file before a later flag wins.
  sed -i \
    -e "s#file=logs/#file=$DATA_DIR/logs/#" \
    -e "s#ErrorFile=logs/#ErrorFile=$DATA_DIR/logs/#" \
    -e "s#HeapDumpPath=data\$#HeapDumpPath=$DATA_DIR/logs#" \
    "$DATA_DIR/config/jvm.options"

  export OPENSEARCH_JAVA_HOME="$JAVA_DIR"
  export OPENSEARCH_PATH_CONF="$DATA_DIR/config"
  export OPENSEARCH_TMPDIR="$DATA_DIR/tmp"
  # Small heap: tests index little, and CI machines have 2 cores / 24 GiB shared
  # with the other test services. Comes after jvm.options, so it wins.
  export OPENSEARCH_JAVA_OPTS="${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m}"

  OS_CMD=()
  if [[ $(id -u) -eq 0 ]]; then
    unshare --user true 2>/dev/null \
      || die "running as root and user namespaces are unavailable; run as a non-root user"
    OS_CMD=(unshare --user --)
  fi
  # Loopback only: that also keeps OpenSearch's production bootstrap checks
  # (vm.max_map_count etc.) off. The disk watermarks are off because a nearly
  # full dev disk would otherwise turn indices read-only mid-test.
  OS_CMD+=("$OS_HOME/bin/opensearch"
    -Ecluster.name=knowflow
    -Enode.name=knowflow-dev
    -Enetwork.host=127.0.0.1
    "-Ehttp.port=$OS_PORT"
    -Ediscovery.type=single-node
    -Ecluster.routing.allocation.disk.threshold_enabled=false
    "-Epath.data=$DATA_DIR/data"
    "-Epath.logs=$DATA_DIR/logs")
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
      die "port $OS_PORT answers but is not a healthy OpenSearch; stop it or set OPENSEARCH_PORT"
    fi
    prepare
    log "starting OpenSearch $OS_VERSION on $BASE_URL (java $JAVA_DIR, data $DATA_DIR, log $LOG_FILE)"
    # setsid: a Ctrl-C or hangup in the caller's terminal must not take the
    # server down. setsid and unshare exec and the launcher execs java, so $!
    # ends up being the JVM's pid.
    setsid "${OS_CMD[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "OpenSearch exited during startup (log: $LOG_FILE)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "not healthy after ${START_TIMEOUT}s (pid $pid still running; log: $LOG_FILE)"
    fi
    sleep 1
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
  # OpenSearch flushes and closes shards on SIGTERM; give it time before -KILL.
  local _
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after 60s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

cmd_status() {
  if healthy; then
    log "up on $BASE_URL"
  else
    log "not healthy on $BASE_URL"
    return 1
  fi
}

cmd_foreground() {
  if port_answers; then
    die "port $OS_PORT is already in use; stop it or set OPENSEARCH_PORT"
  fi
  prepare
  # exec keeps our pid, so `run.sh stop` from another terminal works too.
  echo "$$" >"$PID_FILE"
  exec "${OS_CMD[@]}"
}

case "${1:-}" in
  fetch)      cmd_fetch; log "ready: $OS_HOME" ;;
  start)      cmd_start ;;
  stop)       cmd_stop ;;
  status)     cmd_status ;;
  foreground) cmd_foreground ;;
  *) echo "usage: $0 {fetch|start|stop|status|foreground}" >&2; exit 2 ;;
esac
