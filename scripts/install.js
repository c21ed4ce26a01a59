#!/usr/bin/env node
'use strict';
// npm's install hook. A package with a binding.gyp and no install script gets `node-gyp rebuild` run for it;
// our build is CMake (cmake-js), so this script decides instead:
//   1. BLOCKPRUNE_SKIP_BUILD=1: nothing now (a checkout builds later with `npm run build:native`);
//   2. an addon that loads is already there: a prebuilt one that fits this machine (variant, libtorch
//      present; see lib/runtime/native.ts) or an earlier build. Checked by loading it in a child process;
//   3. otherwise (or with BLOCKPRUNE_BUILD_FROM_SOURCE=1) build from source with cmake-js, which finds
//      libtorch (CMakeLists.txt), then check the result loads. On failure, every attempt and the fixes.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const loader = join(root, 'dist', 'lib', 'runtime', 'native.js');

if (process.env.BLOCKPRUNE_SKIP_BUILD === '1') {
  console.log('blockprune: BLOCKPRUNE_SKIP_BUILD=1, not building the native addon now (npm run build:native)');
  process.exit(0);
}

// Loads the addon the way the library will, in a child (a failed dlopen must not take npm down).
function tryLoad() {
  if (!existsSync(loader)) {
    // A checkout before its TypeScript is compiled: only a build from source can be checked for.
    const built = join(root, 'build', 'Release', 'blockprune.node');
    return existsSync(built) ? { ok: true, line: `found ${built}` } : { ok: false, line: 'no addon built yet' };
  }
  const code = `const n = require(${JSON.stringify(loader)});
    try { const b = n.native(); const s = n.addonSource(); const i = b.buildInfo();
      console.log('blockprune: using ' + s.kind + ' addon ' + s.path + ' (libtorch ' + i.torchVersion + ', ' + (i.cuda ? 'CUDA' : 'CPU') + ', kernels ' + i.cpuKernels + ')'); }
    catch (e) { console.log(e.message); process.exit(3); }`;
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' });
  return { ok: r.status === 0, line: (r.stdout + r.stderr).trim() };
}

if (process.env.BLOCKPRUNE_BUILD_FROM_SOURCE !== '1') {
  const first = tryLoad();
  if (first.ok) {
    console.log(first.line);
    process.exit(0);
  }
  console.log(`blockprune: no prebuilt addon fits this machine; building from source.\n${first.line}`);
}

let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('blockprune: cmake-js is not installed, cannot build the native addon from source');
  process.exit(1);
}
const r = spawnSync(process.execPath, [cmakeJs, 'build', '--out', 'build', '--parallel', '2'], { cwd: root, stdio: 'inherit' });
const after = tryLoad();
if (r.status === 0 && after.ok) {
  console.log(after.line);
  process.exit(0);
}
console.error(
  `blockprune: the build from source ${r.status === 0 ? 'finished but the addon does not load' : 'failed'}.\n${after.line}\n` +
    'Fixes: apt-get install libtorch-dev libopenblas0-pthread libgloo-dev nlohmann-json3-dev cmake g++ (Debian/Ubuntu); ' +
    'or LIBTORCH=<unpacked libtorch> / Torch_DIR=<dir with TorchConfig.cmake> / LIBTORCH_USE_PYTORCH=1; ' +
    'then npm rebuild blockprune.',
);
process.exit(1);
