/**
 * The fused loops of a training step (native/train_kernels.h: dropout, AdamW) through `bench_train --check`,
 * once per kernel set: the default (AVX2 loops) and BLOCKPRUNE_CPU_KERNELS=none (scalar loops). Each run
 * checks dropout's rate (within 5 standard deviations of a binomial over 2^20 + 13 elements), its scale
 * (kept values exactly x / (1 - p)), that backward applies the forward's mask, that a seed repeats it, and
 * AdamW against libtorch's op sequence (3 steps, at most 4 ulps of max(|p|, lr); bound justified in the
 * tool). Both runs must print the same checksum: the same bits whatever the kernel set. A second each.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';

const EXE = join(packageRoot(), 'build', 'bench_train');

function check(env: Record<string, string>): Record<string, unknown> {
  const r = spawnSync(EXE, ['--check'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  const line = r.stdout.split('\n').find((l) => l.includes('"kind":"check"'));
  return { status: r.status, signal: r.signal, stderr: r.stderr, ...(line ? JSON.parse(line) : {}) };
}

if (!existsSync(EXE)) {
  test.skip(`fused dropout and AdamW match libtorch (skipped: ${EXE} not built, BP_BUILD_TOOLS=OFF)`, () => {});
} else {
  test('fused dropout and AdamW match libtorch, with the same bits on the AVX2 and the scalar loops', (t) => {
    const runs = [check({}), check({ BLOCKPRUNE_CPU_KERNELS: 'none' })];
    for (const r of runs) {
      t.log(JSON.stringify(r));
      t.is(r.signal, null, 'no crash');
      t.is(r.status, 0, String(r.stderr));
      t.true(r.ok, 'every check passed');
      t.true(r.dropout_rate_ok && r.dropout_scale_ok && r.dropout_grad_ok && r.dropout_repeat_ok && r.adamw_ok);
    }
    t.is(runs[1].isa, 'none', 'BLOCKPRUNE_CPU_KERNELS=none forces the scalar loops');
    t.is(runs[0].checksum, runs[1].checksum, 'same bits on both kernel sets');
  });
}
