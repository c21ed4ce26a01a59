/**
 * The API docs (`npm run docs`, typedoc over lib/index.ts): typedoc runs without a warning (typedoc.json treats
 * warnings as errors: a public type that refers to one not exported, a broken link), documents every value the
 * package exports, and every option of the trainer, distillation and pruning has a doc comment.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';
import { tempDir } from '../helpers';

const ROOT = packageRoot();
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

interface Reflection {
  name: string;
  comment?: unknown;
  children?: Reflection[];
}

(existsSync(TYPEDOC) ? test : test.skip)('typedoc documents lib/index.ts with no warning: every export, every option commented', (t) => {
  const dir = tempDir();
  try {
    const json = join(dir.path, 'api.json');
    const r = spawnSync(process.execPath, [TYPEDOC, '--json', json, '--out', join(dir.path, 'html')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    const output = r.stdout + r.stderr;
    t.is(r.status, 0, output);
    t.notRegex(output, /warning/i);
    const api = JSON.parse(readFileSync(json, 'utf8')) as Reflection;
    const documented = new Set((api.children ?? []).map((c) => c.name));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const values = Object.keys(require(join(ROOT, 'dist', 'lib', 'index.js')));
    t.log(`typedoc: ${documented.size} documented exports, ${values.length} values exported`);
    t.deepEqual(values.filter((v) => !documented.has(v)), []);
    for (const name of ['SparseTrainerOptions', 'DistillationOptions', 'PruningOptions']) {
      const options = api.children?.find((c) => c.name === name)?.children ?? [];
      t.true(options.length > 0, `${name} is documented`);
      t.deepEqual(options.filter((o) => o.comment === undefined).map((o) => o.name), [], `${name}: options without a doc comment`);
    }
  } finally {
    dir.cleanup();
  }
});
