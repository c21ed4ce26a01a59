#!/usr/bin/env node
'use strict';
// npm's install hook. A package with a binding.gyp and no install script gets `node-gyp rebuild`
// run for it; our build is CMake (cmake-js), so this script decides instead:
//   1. a usable addon is already there (prebuilt for this platform, or built before): done;
//   2. BLOCKPRUNE_SKIP_BUILD=1: done (the user builds later with `npm run build:native`);
//   3. otherwise build from source with cmake-js, which finds libtorch (see CMakeLists.txt).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const candidates = [
  join(root, 'build', 'Release', 'blockprune.node'),
  join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'blockprune.node'),
];
if (candidates.some((p) => existsSync(p))) process.exit(0);
if (process.env.BLOCKPRUNE_SKIP_BUILD === '1') {
  console.log('blockprune: BLOCKPRUNE_SKIP_BUILD=1, not building the native addon now (npm run build:native)');
  process.exit(0);
}
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('blockprune: cmake-js is not installed, cannot build the native addon');
  process.exit(1);
}
const r = spawnSync(process.execPath, [cmakeJs, 'build', '--out', 'build', '--parallel', '2'], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
