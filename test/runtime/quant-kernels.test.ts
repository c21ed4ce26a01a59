/**
 * The int8 / bf16 kernels behind fast::QuantLinear (native/fast/quant.h) against the scalar reference of
 * native/tools/check_quant.cc, over its grid of shapes (m 1..130, n and k off the panel sizes, k not a multiple
 * of 4, BERT's 128x768x768, 128x3072x768, 128x768x3072) and every epilogue, once per kernel set this CPU can
 * run: the default (AVX-512 VNNI / BF16 where present) and BLOCKPRUNE_CPU_KERNELS=avx2 (int8 by vpmaddubsw).
 * The tolerances are stated and justified in check_quant.cc: int8 two ulps of the dequantization's operands
 * (the int32 sums are exact), bf16 the fp32 summation bound (k + 1) 2^-24 sum|x w|. A set the CPU lacks is
 * registered as skipped, naming it. Each run takes a few seconds.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';

const EXE = join(packageRoot(), 'build', 'check_quant');

function run(env: Record<string, string>, args: string[]) {
  return spawnSync(EXE, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
}

/** quant_isa for each format under `env`, from `check_quant --isa` ("isa int8=avx2 bf16=none fp32=avx2"). */
function isas(env: Record<string, string>): Record<string, string> {
  const m = /isa int8=(\S+) bf16=(\S+)/.exec(run(env, ['--isa']).stdout);
  return m ? { int8: m[1], bf16: m[2] } : {};
}

const ENVS: Array<[string, Record<string, string>]> = [
  ['default', {}],
  ['BLOCKPRUNE_CPU_KERNELS=avx2', { BLOCKPRUNE_CPU_KERNELS: 'avx2' }],
];

for (const [label, env] of ENVS) {
  const found = existsSync(EXE) ? isas(env) : {};
  for (const format of ['int8', 'bf16']) {
    const isa = found[format];
    const why = !existsSync(EXE)
      ? `${EXE} not built (BP_BUILD_TOOLS=OFF)`
      : isa === undefined
        ? 'check_quant --isa printed no isa line'
        : isa === 'none'
          ? `this CPU has no ${format} kernels here (quant_isa: none)`
          : undefined;
    const title = `${format} kernels (${label}${isa && isa !== 'none' ? `: ${isa}` : ''}) match the reference on every shape and epilogue`;
    if (why) {
      test.skip(`${title} (skipped: ${why})`, () => {});
      continue;
    }
    test(title, (t) => {
      const r = run(env, ['--check', '--format', format]);
      t.is(r.signal, null, 'no crash');
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${format} ${isa}:`));
      t.truthy(line, r.stdout + r.stderr);
      t.log(line);
      const m = /(\d+) cases, (\d+) outputs, (\d+) mismatches/.exec(line ?? '');
      t.truthy(m, line);
      t.true(Number(m?.[1]) >= 600, 'the whole grid ran');
      t.is(Number(m?.[3]), 0, r.stderr);
      t.is(r.status, 0, r.stderr + r.stdout);
    });
  }
}

// BLOCKPRUNE_FAST_KERNELS=0 switches the quantized kernels off with the fp32 ones: both formats say "none",
// and building a layer then throws a message naming it instead of running an instruction or crashing.
(existsSync(EXE) ? test : test.skip)('BLOCKPRUNE_FAST_KERNELS=0: quant_isa is none for both formats and building a layer throws', (t) => {
  const r = run({ BLOCKPRUNE_FAST_KERNELS: '0' }, ['--check']);
  t.is(r.signal, null, 'no crash');
  t.is(r.status, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /isa int8=none bf16=none/);
  t.regex(r.stdout, /int8 none: skipped .* throws: QuantLinear::int8: no int8 kernels .*quant_isa: none/);
  t.regex(r.stdout, /bf16 none: skipped .* throws: QuantLinear::bf16: no bf16 kernels .*quant_isa: none/);
});
