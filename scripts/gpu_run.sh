#!/usr/bin/env bash
# The GPU run (NVIDIA H200 machine): WebGPU conformance and fixture parity on the
# real adapter, then the decode benchmark with its PyTorch peer and the kernel bench.
# Needs .gpu-carry/ from shared/tools/gpu-prep.sh (Deno + Vulkan loader); results go
# to $OUT (or bench/out). Usage: bash scripts/gpu_run.sh [--quick]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench/out}"; mkdir -p "$out"
for f in .gpu-carry/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
tar xzf .gpu-carry/deno-*.tgz -C .gpu-carry && export PATH=$PWD/.gpu-carry/package:$PATH
run() { echo "== $*"; "$@"; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
run deno run -A --no-config --no-lock bench/gpu_parity.ts 2>&1 | tee "$out/gpu_parity.txt"
MEDIATOR_SKIP_WEBGPU_HUGE=${MEDIATOR_SKIP_WEBGPU_HUGE:-1} run deno test -A --no-config --no-lock tests/webgpu_backend_test.ts 2>&1 | tail -n 40 > "$out/gpu_conformance.txt"
tail -n 3 "$out/gpu_conformance.txt"
tokens=64; [ "${1:-}" = "--quick" ] && tokens=16
run deno run -A --no-config --no-lock bench/gpu_bench.ts --tokens "$tokens" > "$out/gpu_bench.json"; cat "$out/gpu_bench.json" | cut -c1-2000
run python3 bench/torch_decode.py --tokens "$tokens" > "$out/torch_decode.json"; cat "$out/torch_decode.json"
run timeout 240 deno run -A --no-config --no-lock bench/webgpu_bench.ts --tpr auto,8,16 --unroll auto > "$out/webgpu_kernels.txt" 2>&1; tail -n 25 "$out/webgpu_kernels.txt"
