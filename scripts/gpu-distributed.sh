#!/usr/bin/env bash
# For a GPU machine (the device tool: CUDA torch in python3, cmake and ninja, no Node): builds the core and
# native/tools/dist_bench against that torch and measures data-parallel fine-pruning there: NCCL with one rank
# per GPU (a group of one on a one-GPU machine, so the collectives still run), Gloo with CUDA tensors across 2
# ranks, and each against the single process (same global batch; the loss curves are compared).
#
# Prepare here, once (as for scripts/gpu-check.sh), into the ignored .gpu/ that `run` carries:
#   mkdir -p .gpu && cp -r /usr/include/nlohmann .gpu/ && cp -r /usr/include/gloo .gpu/
# then: run(command="bash scripts/gpu-distributed.sh", carry=[".gpu"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBTORCH_USE_PYTORCH=1
export NLOHMANN_INCLUDE=${NLOHMANN_INCLUDE:-$PWD/.gpu}
# pip's torch may not ship the gloo headers c10d's ProcessGroupGloo.hpp includes: Debian's copy, carried.
export GLOO_INCLUDE=${GLOO_INCLUDE:-$PWD/.gpu}
site=$(python3 -c "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))")
export NCCL_INCLUDE=${NCCL_INCLUDE:-$site/nvidia/nccl/include}
gpus=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TOOLS=ON > build-gpu.log 2>&1 || { tail -30 build-gpu.log; exit 1; }
grep -E "blockprune: (libtorch|distributed)" build-gpu.log || true
cmake --build build-gpu --target dist_bench -j "$(nproc)" >> build-gpu.log 2>&1 || { tail -40 build-gpu.log; exit 1; }
out=${OUT:-.}
{
  ./build-gpu/dist_bench --device cuda --backend nccl --nproc "$(( gpus > 0 ? gpus : 1 ))" --geometry base --batch 32 --steps 10 || true
  ./build-gpu/dist_bench --device cuda --backend gloo --nproc 2 --geometry base --batch 32 --steps 10 || true
  ./build-gpu/dist_bench --device cpu --backend gloo --nproc 2 --geometry small --batch 16 --steps 5 || true
} 2>&1 | tee "$out/gpu_distributed.txt"
