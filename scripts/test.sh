#!/usr/bin/env bash
# The whole test suite, as `deno task test` and `.ci/run` run it on a fresh Debian machine:
#   1. installs the real components the tests use (Mesa's software Vulkan for WebGPU,
#      OpenStack Swift's S3 API for storage tests) from apt when missing,
#   2. starts the S3 server on 127.0.0.1 and stops it on exit,
#   3. checks formatting, lint, types and that the committed .wasm matches its sources,
#   4. runs every test with Deno, and prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NO_COLOR=1
# Mesa's Vulkan driver warns on every adapter request without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
bash scripts/install_vulkan.sh >&2
set -a
eval "$(bash scripts/s3_server.sh start)"
set +a
trap 'bash scripts/s3_server.sh stop >/dev/null 2>&1 || true' EXIT

deno fmt --check
deno lint
deno check src bench tests scripts
deno run -A scripts/build_kernels.ts --check

log=$(mktemp)
status=0
deno test -A --no-prompt tests/ "$@" 2>&1 | tee "$log" || status=$?
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1 || true)
passed=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
