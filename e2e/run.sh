#!/usr/bin/env bash
# End-to-end test of the /dispatch page: builds despacho, starts `despacho serve --demo`
# on a temporary SQLite file, drives the page in headless Chromium (Debian's chromium
# through playwright-core) and saves screenshots in docs/.
# Skips (exit 0, with a message) when chromium is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$chromium" ]]; then
  echo "SKIPPED: chromium is not installed (apt-get install -y chromium), e2e test not run"
  exit 0
fi
cd "$here"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund
target="${CARGO_TARGET_DIR:-$root/target}"
# E2E_NO_BUILD=1: use the binary already built in $target. `--workspace` resolves the
# dependencies' features as `cargo test --workspace` does, so their builds are reused.
[[ "${E2E_NO_BUILD:-}" == 1 ]] || (cd "$root" && cargo build --workspace --bin despacho)
work="$(mktemp -d)"
port="${E2E_PORT:-18188}"
servers=()
trap 'for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# serve NAME PORT [ARGS...]: starts `despacho serve --demo` on its own SQLite file and
# sets $key to its dispatcher key.
serve() {
  local name="$1" at="$2"
  shift 2
  mkdir -p "$work/$name"
  "$target/debug/despacho" serve --demo --no-worker --listen "127.0.0.1:$at" \
    --database-url "sqlite://$work/$name/despacho.db" "$@" > "$work/$name/out.txt" 2> "$work/$name/err.txt" &
  servers+=($!)
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/$name/out.txt" 2>/dev/null && break
    sleep 0.2
  done
  key="$(awk '$1 == "dispatcher" {print $2}' "$work/$name/out.txt")"
  [[ -n "$key" ]] || { cat "$work/$name/out.txt" "$work/$name/err.txt"; echo "no dispatcher key"; exit 1; }
}

date="$(TZ=America/Sao_Paulo date +%F)"
serve plain "$port"
CHROMIUM="$chromium" node dispatch.mjs "http://127.0.0.1:$port" "$key" "$date" "$root/docs"

# The map over a tile server (tiles.mjs serves the tiles itself).
tiles=$((port + 1))
serve tiles $((port + 2)) --map-tiles "http://127.0.0.1:$tiles/{z}/{x}/{y}.png" --map-attribution "test tiles"
CHROMIUM="$chromium" node tiles.mjs "http://127.0.0.1:$((port + 2))" "$key" "$date" "$root/docs" "$tiles"
