#!/usr/bin/env bash
# The main job (README quick start): set up what is missing, build, then run the end-to-end job on bundled
# data. Today that is the forward benchmark (bert-base geometry: Node vs C++ vs the GEMM roofline); the
# fine-pruning run (train, prune, compact, report) takes its place as the trainer lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/lib/cli.js bench "$@"
