#!/usr/bin/env bash
# The GPU run (NVIDIA H200 machine): WebGPU conformance and fixture parity on the
# real adapter, then the decode benchmark with its PyTorch peer, the backends comparison
# (when dist/ort-bench from bench/onnx_gpu_bundle.ts is there) and, with --kernels, the
# WebGPU kernel bench. Needs .gpu-carry/ prepared beforehand (a Deno 2.9.6 build and the Vulkan
# loader); results go to $OUT (or bench/out). Usage: bash scripts/gpu_run.sh [--quick] [--kernels]
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
tokens=64; [[ " $* " == *" --quick "* ]] && tokens=16
run deno run -A --no-config --no-lock bench/gpu_bench.ts --tokens "$tokens" > "$out/gpu_bench.json"; cat "$out/gpu_bench.json"
run python3 bench/torch_decode.py --tokens "$tokens" > "$out/torch_decode.json"; cat "$out/torch_decode.json"
if [ -f dist/ort-bench/onnx_decode_process.js ]; then
  xz -dkf dist/ort-bench/*.xz
  run timeout 400 deno run -A --no-config --no-lock bench/compare.ts --tokens "$tokens" \
    --ort-child dist/ort-bench/onnx_decode_process.js --ort-threads 1 > "$out/compare.txt" 2>&1
  tail -n 20 "$out/compare.txt"
fi
if [[ " $* " == *" --kernels "* ]]; then
  run timeout 240 deno run -A --no-config --no-lock bench/webgpu_bench.ts --tpr auto,8,16 --unroll auto > "$out/webgpu_kernels.txt" 2>&1; tail -n 25 "$out/webgpu_kernels.txt"
fi
