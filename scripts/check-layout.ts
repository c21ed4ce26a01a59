#!/usr/bin/env node
/**
 * npm run check:layout: the size half of the house rules (the import half is .dependency-cruiser.cjs). Every
 * source file of lib/, scripts/ and native/ holds at most LIMIT lines, unless it is listed below with the one
 * concept that makes it longer. Prints each file over the limit and exits 1 when one is not listed.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../lib/runtime/native';

const LIMIT = 500;
/** Files allowed past the limit, and why each is still one concept. */
const ONE_CONCEPT: Record<string, string> = {
  'native/torch_bin.cc': 'the restricted unpickler of torch.save zips: one pickle opcode loop and its whitelist',
  'native/tools/check_torch_bin.cc': 'one test program for that unpickler (hostile pickles, one case after another)',
  'native/bert.cc': 'the BERT modules of transformers modeling_bert.py, one after another, and their forward',
  'lib/runtime/native.ts': 'the typed contract with the addon: every native function and object typed in one place, and the loader',
};

function sources(dir: string, root: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, root, out);
    else if (/\.(ts|js|cc|h)$/.test(name) && !name.endsWith('.d.ts')) out.push(relative(root, p));
  }
  return out;
}

const root = packageRoot();
let bad = 0;
let listed = 0;
const files = ['lib', 'scripts', 'native'].flatMap((d) => sources(join(root, d), root));
for (const file of files) {
  // wc -l counts line ends: a file's final newline does not start another line.
  const lines = readFileSync(join(root, file), 'utf8').replace(/\n$/, '').split('\n').length;
  if (lines <= LIMIT) continue;
  if (ONE_CONCEPT[file]) {
    listed++;
    continue;
  }
  bad++;
  console.error(`${file}: ${lines} lines (limit ${LIMIT}): split it by concept, or list it in scripts/check-layout.ts with the one concept it holds`);
}
for (const file of Object.keys(ONE_CONCEPT)) if (!files.includes(file)) console.error(`scripts/check-layout.ts lists ${file}, which does not exist`), bad++;
console.log(`check:layout: ${files.length} files, ${listed} over ${LIMIT} lines as one concept, ${bad} to split`);
process.exit(bad ? 1 : 0);
