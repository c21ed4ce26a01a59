#!/usr/bin/env bash
# For a GPU machine (the device tool; it has CUDA torch in python3, cmake and ninja, but no Node): builds
# the native core and tools against that torch (LIBTORCH_USE_PYTORCH=1, how CUDA builds are made) and runs
# native/tools/gpu_check on CUDA: fixture parity of the forward, 3 AdamW steps against transformers' losses,
# and bert-base training-step throughput (plain and hybrid-patched) at 8 x 128.
#
# Prepare here, once, what the GPU machine lacks, into ignored folders that `run` carries:
#   mkdir -p .gpu && cp -r /usr/include/nlohmann .gpu/ && cp -r ../shared/fixtures .gpu/fixtures
#   echo /.gpu/ >> .git/info/exclude
# then: run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBTORCH_USE_PYTORCH=1
export NLOHMANN_INCLUDE=${NLOHMANN_INCLUDE:-$PWD/.gpu}
fixtures=${FIXTURES:-$PWD/.gpu/fixtures}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TOOLS=ON > build-gpu.log 2>&1 || { tail -30 build-gpu.log; exit 1; }
grep "blockprune: libtorch" build-gpu.log || true
cmake --build build-gpu --target gpu_check -j "$(nproc)" >> build-gpu.log 2>&1 || { tail -40 build-gpu.log; exit 1; }
out=${OUT:-.}
./build-gpu/gpu_check --fixtures "$fixtures" --device cuda --steps 20 | tee "$out/gpu_check.txt"
./build-gpu/gpu_check --fixtures "$fixtures" --device cpu --skip-throughput | tee -a "$out/gpu_check.txt"
