#!/usr/bin/env bash
# The official AsyncAPI 3.0.0 JSON Schema, to check Knowflow's generated document against.
#
#   fetch-schema.sh          download once into the cache (sha256 pinned), print its path
#   fetch-schema.sh path     print where the schema is (or would be) cached
#
# Env: ASYNCAPI_SPECS_VERSION (default 6.11.1), ASYNCAPI_SPECS_SHA256 (of that tarball),
#      KNOWFLOW_CACHE (default ~/.cache/knowflow).
#
# Why: the schema ships in the `@asyncapi/specs` npm package. registry.npmjs.org is
# reachable from every Knowflow machine with curl, so no Node is needed: the tarball is
# fetched like the OpenSearch distribution (cached, verified by sha256, never rewritten).
# `3.0.0-without-$id.json` is the self-contained variant (all definitions inline), which
# `jsonschema` validates without resolving remote references.
set -euo pipefail

VERSION="${ASYNCAPI_SPECS_VERSION:-6.11.1}"
SHA256="${ASYNCAPI_SPECS_SHA256:-01af8744dc33c0c7eb2e908f6a955319ee58b70ecadc9387d1aeb16c0cd28928}"
CACHE_DIR="${KNOWFLOW_CACHE:-$HOME/.cache/knowflow}/asyncapi/specs-$VERSION"
SCHEMA="$CACHE_DIR/3.0.0-without-\$id.json"
URL="https://registry.npmjs.org/@asyncapi/specs/-/specs-$VERSION.tgz"

log() { printf '[asyncapi] %s\n' "$*" >&2; }
die() { printf '[asyncapi] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ ${1:-fetch} == path ]]; then
  printf '%s\n' "$SCHEMA"
  exit 0
fi

if [[ ! -s $SCHEMA ]]; then
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock 8
  if [[ ! -s $SCHEMA ]]; then
    tgz="$CACHE_DIR/specs-$VERSION.tgz"
    log "fetching $URL"
    curl -fsSL --retry 3 -o "$tgz.part" "$URL" || die "download failed: $URL"
    actual="$(sha256sum "$tgz.part" | cut -d' ' -f1)"
    [[ $actual == "$SHA256" ]] || { rm -f "$tgz.part"; die "sha256 mismatch: $actual != $SHA256"; }
    mv "$tgz.part" "$tgz"
    tar -xzf "$tgz" -C "$CACHE_DIR" --strip-components=2 'package/schemas/3.0.0-without-$id.json'
    [[ -s $SCHEMA ]] || die "the package has no schemas/3.0.0-without-\$id.json"
  fi
  exec 8>&-
fi
printf '%s\n' "$SCHEMA"
