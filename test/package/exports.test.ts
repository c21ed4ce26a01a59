/**
 * What the package.json promises, checked without installing (test/package/pack.test.ts installs the tarball):
 * the tarball's file list (`npm pack --dry-run`) holds the LICENSE, the targets of `exports`, and every file
 * the shipped source maps name; `require`, `import` and TypeScript (node16 resolution, CommonJS and ESM) reach
 * 'blockprune' through its `exports` map; `addonSource()` describes the addon in a fresh process.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';
import { tempDir } from '../helpers';

const ROOT = packageRoot();
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

test('the tarball: LICENSE (Apache-2.0), the exports targets, and every source map with the sources it names', (t) => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }))[0];
  const files = new Set<string>(packed.files.map((f: { path: string }) => f.path));
  t.log(`npm pack --dry-run: ${(packed.size / 1e3).toFixed(0)} kB packed, ${(packed.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${packed.entryCount} files`);
  t.true(files.has('LICENSE'));
  t.is(PKG.license, 'Apache-2.0');
  t.regex(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004[\s\S]*END OF TERMS AND CONDITIONS/);
  const targets = Object.values(PKG.exports as Record<string, string | Record<string, string>>).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v)));
  t.deepEqual(targets.filter((f) => !files.has(posix.normalize(f))), [], 'every exports target is shipped');

  // A shipped script names its map (sourceMappingURL), the map its sources: each must be in the tarball.
  const dangling: string[] = [];
  let maps = 0;
  for (const js of [...files].filter((f) => f.endsWith('.js') && f.startsWith('dist/'))) {
    const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(ROOT, js), 'utf8'))?.[1];
    if (url === undefined) continue;
    const map = posix.join(posix.dirname(js), url);
    if (!files.has(map)) {
      dangling.push(`${js} -> ${map}`);
      continue;
    }
    maps++;
    const { sourceRoot = '', sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sourceRoot?: string; sources: string[] };
    for (const s of sources) {
      const src = posix.join(posix.dirname(map), sourceRoot, s);
      if (!files.has(src)) dangling.push(`${map} -> ${src}`);
    }
  }
  t.true(maps > 0, 'the scripts have maps');
  t.deepEqual(dangling, [], 'no shipped map or source reference points outside the tarball');
  t.log(`${maps} source maps, each with its sources in the tarball`);
});

test("require, import and TypeScript (node16, CJS and ESM) reach 'blockprune' through its exports map", (t) => {
  // An app whose node_modules/blockprune is this checkout: resolution goes through package.json as installed.
  const tmp = tempDir('blockprune-exports-');
  try {
    const app = tmp.path;
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(ROOT, join(app, 'node_modules', 'blockprune'), 'dir');
    const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: app, encoding: 'utf8' });

    const cjs = node(['-e', "const bp = require('blockprune'); console.log(typeof bp.pipeline, typeof bp.BertModel, require('blockprune/package.json').name)"]);
    t.is(cjs.status, 0, cjs.stderr);
    t.is(cjs.stdout.trim(), 'function function blockprune');
    const esm = node(['--input-type=module', '-e', "import { pipeline, BertModel } from 'blockprune'; import bp from 'blockprune'; console.log(typeof pipeline, typeof BertModel, typeof bp.pipeline)"]);
    t.is(esm.status, 0, esm.stderr);
    t.is(esm.stdout.trim(), 'function function function');
    // The map is the public surface: the files behind it are not importable one by one.
    const deep = node(['-e', "require('blockprune/dist/lib/model/model')"]);
    t.not(deep.status, 0);
    t.regex(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);

    // The types through the `types` condition, for a CommonJS and an ESM program (node16 resolution reads exports).
    // skipLibCheck as `tsc --init` writes it: under node16, @huggingface/tokenizers' own declarations (extensionless
    // relative imports in an ESM package) do not check, and ours name its types; the user's file is checked in full.
    const program = (kind: string) => `import { pipeline, addonSource } from 'blockprune';
const source: { kind: 'env' | 'build' | 'prebuild'; path: string } = addonSource();
export async function main(): Promise<string> {
  const classify = await pipeline('text-classification', '/models/cls');
  return (await classify('${kind}')).label + source.kind;
}
`;
    writeFileSync(join(app, 'cjs.ts'), program('cjs'));
    writeFileSync(join(app, 'esm.mts'), program('esm'));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = node([tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), '--skipLibCheck', 'cjs.ts', 'esm.mts']);
    t.is(r.status, 0, r.stdout + r.stderr);
  } finally {
    tmp.cleanup();
  }
});

test('addonSource() describes the addon before any other native call (a fresh process)', (t) => {
  const index = join(ROOT, 'dist', 'lib', 'index.js');
  const r = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(index)}).addonSource() ?? null))`], { cwd: dirname(index), encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const source = JSON.parse(r.stdout.trim());
  t.not(source, null, 'addonSource() is not undefined on its first call');
  t.true(['env', 'build', 'prebuild'].includes(source.kind), JSON.stringify(source));
  t.is(typeof source.path, 'string');
  t.log(`addonSource() first thing: ${JSON.stringify(source)}`);
});
