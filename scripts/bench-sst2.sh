#!/usr/bin/env bash
# SST-2 from random weights (issue 4's proof), a benchmark, not a test: train on ../shared/data/sst2
# train.tsv + dev.tsv, evaluate on test.tsv (the official GLUE dev set), bert-base-uncased tokenizer, max
# length 64, a small BERT (hidden 128, 2 layers, 4 heads, FFN 512): dense, then hybrid fine-pruning (32x32
# attention blocks, FFN rows/cols, threshold 0 -> 0.1, lambda 20, mask lr 1e-2) distilling from the dense model.
# Goal: dense >= 80%; pruned to <= 10% density of the encoder's linear weights loses <= 2 points.
# Reference (nn_pruning on this machine): dense 81.7% after one epoch (lr 5e-4, batch 32); fine-pruned with
# lambda 20 for 2 epochs (lr 2e-4): 78.4% at 2.9% density.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${BLOCKPRUNE_SHARED:-../shared}
if [ ! -f "$shared/data/sst2/train.tsv" ]; then
  echo "bench-sst2: $shared/data/sst2 not found (set BLOCKPRUNE_SHARED); skipped"
  exit 0
fi
node dist/lib/cli/main.js train --task sst2 --data "$shared/data" --tokenizer "$shared/data/bert-base-uncased" \
  --max-length 64 --dense-epochs "${DENSE_EPOCHS:-1}" --dense-lr 5e-4 --epochs "${PRUNE_EPOCHS:-2}" --lr 2e-4 \
  --batch-size 32 --preset hybrid --lambda 20 --final-threshold 0.1 --mask-lr 1e-2 --output "${OUT:-out/sst2}" "$@"
