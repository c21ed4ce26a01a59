/**
 * The plain-C++ checks in native/tools (built with the addon): the torch.save reader against the fixture
 * and 50+ hostile archives, run as a separate process so a crash there would show as a failed test here.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';
import { shared, skipped, withShared } from '../helpers';

const CHECK_TORCH_BIN = join(packageRoot(), 'build', 'check_torch_bin');
const torchBinTest = existsSync(CHECK_TORCH_BIN) ? withShared('fixtures') : skipped(`${CHECK_TORCH_BIN} not built (BP_BUILD_TOOLS=OFF)`);
torchBinTest('check_torch_bin: pytorch_model.bin equals model.safetensors; hostile archives are refused', (t) => {
  const fixtures = shared('fixtures');
  const exe = CHECK_TORCH_BIN;
  const r = spawnSync(exe, [join(fixtures, 'bert-tiny-cls-bin', 'pytorch_model.bin'), join(fixtures, 'bert-tiny-cls', 'model.safetensors')], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const lines = r.stdout.split('\n');
  t.log(lines.filter((l) => /max|FAIL|hostile|ok\b/i.test(l)).slice(-6).join('\n'));
  t.is(r.signal, null, 'no crash');
  t.is(r.status, 0, r.stderr + r.stdout.slice(-2000));
});

// The tools' numbers go through native/tools/args.h: a bad one is a usage error (exit 2, one line naming the
// flag), never std::terminate (std::stoll) or a libtorch stack trace (a negative shape). Binaries built before
// args.h existed still crash, so they are skipped, saying so.
const TOOL_ARGS: Array<[string, string[], RegExp]> = [
  ['bench_forward', ['--batch', 'abc'], /^--batch: expected an integer in \[1, 4096\], got "abc"/],
  ['bench_forward', ['--batch', '-3'], /^--batch: expected an integer/],
  ['bench_forward', ['--batch', '1,,8'], /^--batch: expected an integer/],
  ['bench_forward', ['--seq', '100000'], /^--seq: expected an integer in \[1, 512\]/],
  ['bench_forward', ['--runs', '1x'], /^--runs: expected an integer/],
  ['bench_forward', ['--hidden', '0'], /^--hidden: expected an integer/],
  ['dist_bench', ['--nproc', 'two'], /^--nproc: expected an integer/],
  ['dist_bench', ['--seq', '0'], /^--seq: expected an integer/],
  ['gpu_check', ['--steps', 'abc'], /^--steps: expected an integer/],
];
const toolsStale = (() => {
  const root = packageRoot();
  const since = statSync(join(root, 'native', 'tools', 'args.h')).mtimeMs;
  for (const name of new Set(TOOL_ARGS.map((c) => c[0]))) {
    const exe = join(root, 'build', name);
    if (!existsSync(exe)) return `build/${name} not built (BP_BUILD_TOOLS=OFF)`;
    if (statSync(exe).mtimeMs < since) return `build/${name} predates native/tools/args.h (rebuild: npx cmake-js build)`;
  }
  return undefined;
})();
(toolsStale ? test.skip : test)(`native tools: bad numbers exit 2 with one line naming the flag${toolsStale ? ` (skipped: ${toolsStale})` : ''}`, (t) => {
  for (const [name, args, re] of TOOL_ARGS) {
    const r = spawnSync(join(packageRoot(), 'build', name), args, { encoding: 'utf8', timeout: 60_000 });
    t.is(r.signal, null, `${name} ${args.join(' ')}: no crash`);
    t.is(r.status, 2, `${name} ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re);
    t.notRegex(r.stderr, /terminate|Exception raised from/);
  }
  t.log(`${TOOL_ARGS.length} bad tool arguments: exit 2 naming the flag`);
});
