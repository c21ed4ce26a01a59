#!/usr/bin/env node
'use strict';
// npm run prebuild: a prebuilt addon for this platform, tagged with what it was built against.
//
//   node scripts/prebuild.js [--reuse]
//
// 1. Builds the addon with cmake-js (CMakeLists.txt finds libtorch: Debian's for the CPU build; on a GPU
//    machine LIBTORCH_USE_PYTORCH=1 takes the python torch, which makes the CUDA build). --reuse packages the
//    addon already in build/Release instead.
// 2. Loads it in a child process and reads its build info: libtorch version, C++ ABI, CPU or CUDA.
// 3. prebuildify (Node-API, stripped) places it as
//      prebuilds/<platform>-<arch>/blockprune.<cpu|cuda>.torch<version>.abi<0|1>.napi8.node
//    and the folder's manifest.json records, per file, those tags plus the shared libraries it needs
//    (ELF NEEDED) and the libtorch folder it was linked against. lib/runtime/native.ts reads the manifest to pick a
//    variant and to check, before loading, that the libraries it needs are present.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const reuse = process.argv.includes('--reuse');
const built = path.join(root, 'build', 'Release', 'blockprune.node');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', ...opts });
  if (r.error) throw r.error;
  return r;
}

if (!reuse) {
  const r = run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'build', '--out', 'build', '--parallel', '2'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('prebuild: the native build failed (see above)');
    process.exit(1);
  }
}
if (!fs.existsSync(built)) {
  console.error(`prebuild: ${built} does not exist (build it: npm run build:native, or drop --reuse)`);
  process.exit(1);
}

// What the addon was built against, from the addon itself.
const probe = run(process.execPath, ['-e', `const b = require(${JSON.stringify(built)}); console.log(JSON.stringify(b.buildInfo()))`]);
if (probe.status !== 0) {
  console.error(`prebuild: the built addon does not load:\n${probe.stderr}`);
  process.exit(1);
}
const info = JSON.parse(probe.stdout.trim().split('\n').pop());
const variant = info.cuda ? 'cuda' : 'cpu';
const napi = 8; // NAPI_VERSION in CMakeLists.txt
const name = `blockprune.${variant}.torch${info.torchVersion}.abi${info.cxx11Abi ? 1 : 0}.napi${napi}`;

// The shared libraries it needs and where it was told to find them (RUNPATH), from the ELF header.
function elf(file) {
  const r = run('readelf', ['-d', file]);
  if (r.status !== 0) return { needed: [], runpath: [] };
  const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const rp = /\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[([^\]]+)\]/.exec(r.stdout);
  return { needed, runpath: rp ? rp[1].split(':') : [] };
}

// prebuildify does the naming, stripping and placing. It would run node-gyp; the build is already done
// (CMake), so its "node-gyp" is `true` run in a staging folder that holds a copy of the addon.
const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'blockprune-prebuild-'));
fs.mkdirSync(path.join(staging, 'build', 'Release'), { recursive: true });
fs.copyFileSync(built, path.join(staging, 'build', 'Release', 'blockprune.node'));
const prebuildify = require('prebuildify');
const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
prebuildify(
  { cwd: staging, out: root, name, napi: true, strip: true, nodeGyp: 'true', targets: [process.versions.node], quiet: true },
  (err) => {
    fs.rmSync(staging, { recursive: true, force: true });
    if (err) {
      console.error(`prebuild: prebuildify failed: ${err.message}`);
      process.exit(1);
    }
    const file = `${name}.node`;
    const dest = path.join(outDir, file);
    const { needed, runpath } = elf(dest);
    const manifestPath = path.join(outDir, 'manifest.json');
    let manifest = { prebuilds: [] };
    try {
      manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
    } catch {
      /* a new folder */
    }
    manifest.prebuilds = manifest.prebuilds.filter((p) => p.file !== file);
    manifest.prebuilds.push({
      file,
      variant,
      torchVersion: info.torchVersion,
      cxx11Abi: info.cxx11Abi,
      napi,
      needed,
      runpath,
      builtWith: `node ${process.versions.node}, ${os.platform()}-${os.arch()}`,
      bytes: fs.statSync(dest).size,
    });
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    console.log(`prebuild: ${path.relative(root, dest)} (${(fs.statSync(dest).size / 1e6).toFixed(2)} MB; ${variant}, libtorch ${info.torchVersion}, C++11 ABI ${info.cxx11Abi ? 1 : 0})`);
  },
);
