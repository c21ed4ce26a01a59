/**
 * The plain-C++ checks in native/tools (built with the addon): the torch.save reader against the fixture
 * and 50+ hostile archives, run as a separate process so a crash there would show as a failed test here.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/native';
import { needShared } from './helpers';

test('check_torch_bin: pytorch_model.bin equals model.safetensors; hostile archives are refused', (t) => {
  const fixtures = needShared(t, 'fixtures');
  if (!fixtures) return;
  const exe = join(packageRoot(), 'build', 'check_torch_bin');
  if (!existsSync(exe)) {
    t.log(`skipped: ${exe} not built (BP_BUILD_TOOLS=OFF)`);
    t.pass();
    return;
  }
  const r = spawnSync(exe, [join(fixtures, 'bert-tiny-cls-bin', 'pytorch_model.bin'), join(fixtures, 'bert-tiny-cls', 'model.safetensors')], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const lines = r.stdout.split('\n');
  t.log(lines.filter((l) => /max|FAIL|hostile|ok\b/i.test(l)).slice(-6).join('\n'));
  t.is(r.signal, null, 'no crash');
  t.is(r.status, 0, r.stderr + r.stdout.slice(-2000));
});
