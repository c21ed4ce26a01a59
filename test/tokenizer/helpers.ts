/** Helpers of the tokenizer tests: the shared data, bert-base-uncased loaded both ways, temp dirs. */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { SHARED } from '../helpers';

// Tests that need ../shared are registered as skipped (reported as such) when it is not there.
export const st = SHARED ? test : test.skip;
export const stSerial = SHARED ? test.serial : test.skip;
if (!SHARED) {
  console.log('tokenizer tests: shared data not found (set BLOCKPRUNE_SHARED); data-dependent tests are skipped');
}
export const S = (...p: string[]): string => path.join(SHARED ?? '/nonexistent', ...p);
export const BERT_DIR = S('data', 'bert-base-uncased');

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'blockprune-tok-'));
}

// Both loading paths: tokenizer.json, and vocab.txt alone (tokenizer.json built in memory).
export const loaders: Record<string, () => BertTokenizer> = {
  'tokenizer.json': () => BertTokenizer.fromDir(BERT_DIR),
  'vocab.txt': () => {
    const d = tmpDir();
    fs.copyFileSync(path.join(BERT_DIR, 'vocab.txt'), path.join(d, 'vocab.txt'));
    return BertTokenizer.fromDir(d);
  },
};
const cache = new Map<string, BertTokenizer>();
export function tok(kind: string): BertTokenizer {
  let t = cache.get(kind);
  if (!t) {
    t = loaders[kind]();
    cache.set(kind, t);
  }
  return t;
}

export const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** What BERT normalization does to a span of original text, for comparing with token text. */
export function normalizeSpan(s: string): string {
  return s.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '').replace(/[\p{Cc}\p{Cf}]/gu, '');
}
