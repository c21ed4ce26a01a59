/**
 * examples/ is the README's programs, runnable: every example runs here as a user would run it (`node
 * examples/X`, importing 'blockprune' through the package's exports map) and its output is checked; and the
 * README and examples/ cannot drift apart: every README program (a ts code block) has an example naming
 * its section, and every name that program imports or calls is used by that example.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, packageRoot } from '../../lib/runtime/native';

const ROOT = packageRoot();
const EXAMPLES = join(ROOT, 'examples');
/** What the examples share (not an example itself). */
const HELPERS = ['tiny-model.js'];

/** Each example and lines its output must hold (the examples also assert what they show, with node:assert). */
const EXPECTED: Record<string, RegExp[]> = {
  'pipeline.mjs': [/^classify: (positive|negative) 0\.\d+$/m, /^topK 2: \w+ 0\.\d+, \w+ 0\.\d+$/m, /^qa: \{"answer"/m, /^saved and reloaded: same logits$/m],
  'prune-compact.js': [/^patched 12 linears$/m, /^mask pictures: \d+$/m, /heads kept: [1-3] of 4/, /^logits, pruned vs compact: max \|diff\| /m],
  'hub-cache.js': [/^from the cache: bert, \d+ parameters$/m, /^sentiment-analysis at v1\.0: \w+$/m, /progress events for a cached model: 0$/m, /^missing offline: E_NOT_CACHED$/m],
  'onnx-export.js': [/^compact: layer 0 \d heads, FFN \d+/m, /^model\.onnx: \d+ kB, inputs input_ids, attention_mask, token_type_ids$/m, /^onnxruntime vs blockprune logits: max \|diff\| /m],
  'serve.js': [/^POST \/classify \{text\} x3: 200 \w+, 200 \w+, 200 \w+$/m, /^POST \/classify \{inputs\}: 200 \{"label"/m, /^POST \/classify \{txt\}: 400 unknown field "txt"/m, /^GET \/health: ok, \/classify answered 5 /m],
  'quantize.js': [/^int8: weights \d+ kB -> \d+ kB; logits vs fp32: max \|diff\| /m, /^bf16: weights \d+ kB -> \d+ kB/m, /pipeline on the int8 folder: (positive|negative)/],
  'data-parallel.js': [/rank 0: 8 steps in a world of 2/, /rank 1: 8 steps in a world of 2/, /^both ranks done, exit code 0$/m],
};

const examples = readdirSync(EXAMPLES).filter((f) => /\.(js|mjs|cjs)$/.test(f) && !HELPERS.includes(f));

test('every example is run by this test', (t) => {
  t.deepEqual(examples.slice().sort(), Object.keys(EXPECTED).sort());
});

for (const file of examples) {
  const needsGloo = file === 'data-parallel.js' && !native().buildInfo().distributedBackends.includes('gloo');
  (needsGloo ? test.skip : test)(`examples/${file} runs and prints what it shows`, (t) => {
    const r = spawnSync(process.execPath, [join('examples', file)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    t.log(`${file}: exit ${r.status}, ${r.stdout.split('\n').length - 1} lines`);
    t.is(r.status, 0, `${file} failed:\n${r.stdout}\n${r.stderr}`);
    for (const re of EXPECTED[file] ?? []) t.regex(r.stdout, re);
  });
}

/** The README's programs (its ts/js code blocks), each with the heading of its section. */
function readmePrograms(readme: string): Array<{ section: string; code: string }> {
  const out: Array<{ section: string; code: string }> = [];
  let section = '';
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (/^#{2,4} /.test(lines[i])) section = lines[i].trim();
    if (!/^```(ts|js|typescript|javascript)\s*$/.test(lines[i])) continue;
    const start = ++i;
    while (i < lines.length && !lines[i].startsWith('```')) i++;
    out.push({ section, code: lines.slice(start, i).join('\n') });
  }
  return out;
}

/** What a program uses: the names it imports from 'blockprune' and the names it calls (comments left out). */
function usedNames(code: string): string[] {
  const bare = code.replace(/(^|\s)\/\/.*$/gm, '$1');
  const imported = [...bare.matchAll(/import\s*\{([^}]*)\}\s*from 'blockprune'/g)].flatMap((m) => m[1].split(',').map((s) => s.trim()).filter(Boolean));
  const called = [...bare.matchAll(/([A-Za-z_$][\w$]*)\s*\(/g)].map((m) => m[1]);
  return [...new Set([...imported, ...called])];
}

test("the README's programs and examples/ agree: each has its example, which uses every name it imports or calls", (t) => {
  const programs = readmePrograms(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const sources = examples.map((file) => ({ file, text: readFileSync(join(EXAMPLES, file), 'utf8') }));
  const sectionOf = (text: string) => /The README's "(#{2,4} [^"]+)" program/.exec(text)?.[1];
  t.log(`${programs.length} README programs, ${sources.length} examples`);
  t.true(programs.length >= 6);
  for (const { file, text } of sources) {
    const section = sectionOf(text);
    t.truthy(section, `${file} names the README section whose program it runs (The README's "## ..." program)`);
    t.true(programs.some((p) => p.section === section), `${file} names "${section}", which has no program in the README`);
  }
  for (const { section, code } of programs) {
    const mine = sources.filter((s) => sectionOf(s.text) === section);
    t.true(mine.length > 0, `the README's program under "${section}" has no example in examples/`);
    const words = new Set(mine.flatMap((s) => s.text.match(/[A-Za-z_$][\w$]*/g) ?? []));
    const missing = usedNames(code).filter((n) => !words.has(n));
    t.deepEqual(missing, [], `the README's program under "${section}" uses names its example (${mine.map((s) => s.file).join(', ')}) does not`);
  }
});
