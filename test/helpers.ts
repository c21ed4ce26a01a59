/** Shared test helpers: where ../shared is (and tests that need it), temp dirs, tensor comparisons. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext, SkipFn, TestFn } from 'ava';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { native, packageRoot, TensorData } from '../lib/runtime/native';
import { sharedDir } from '../scripts/common';

/** ../shared beside the checkout (or BLOCKPRUNE_SHARED), recognised by its fixtures/; undefined when absent. */
export const SHARED = sharedDir(['fixtures']);
export const FIXTURES = SHARED ? join(SHARED, 'fixtures') : undefined;
export const DATA = SHARED ? join(SHARED, 'data') : undefined;

/** The path of `sub` in ../shared (BLOCKPRUNE_SHARED), or undefined when it is not there. */
export function sharedPath(sub: string): string | undefined {
  const p = SHARED ? join(SHARED, sub) : undefined;
  return p && existsSync(p) ? p : undefined;
}

/**
 * What `withShared` and `skipped` give: call it to register a test, or `.serial(...)` for a serial one. Either
 * both are ava's `test` / `test.serial`, or both register the test as skipped (reported as skipped, not passed).
 */
export type SharedTestFn = SkipFn & { serial: SkipFn };

/**
 * ava's `test`, loaded when a test file registers a test: not at import, since the child processes of some tests
 * (fuzz-worker, concurrency-worker) import this file outside ava, where loading ava throws.
 */
function avaTest(): TestFn {
  const m = require('ava');
  return (m.default ?? m) as TestFn;
}

/** Registers tests as skipped (ava's `test.skip` / `test.serial.skip`), with a console line saying why. */
export function skipped(why: string): SharedTestFn {
  console.log(`skipping tests: ${why}`);
  const test = avaTest();
  const skip: SkipFn = (...args: unknown[]) => (test.skip as (...a: unknown[]) => void)(...args);
  return Object.assign(skip, { serial: test.serial.skip });
}

/**
 * `test` when every path in `subs` is in ../shared, else `skipped(...)` naming what is missing: a test whose
 * input is missing is reported as skipped, never as passed. Read the paths in the test with `shared(sub)`.
 */
export function withShared(...subs: string[]): SharedTestFn {
  const missing = [...new Set(subs)].filter((s) => sharedPath(s) === undefined);
  if (missing.length === 0) return avaTest();
  return skipped(`they need ${missing.join(', ')} (set BLOCKPRUNE_SHARED to the shared/ folder)`);
}

/** `sharedPath(sub)` in a test registered with `withShared(sub)`. */
export function shared(sub: string): string {
  const p = sharedPath(sub);
  if (!p) throw new Error(`${sub} is not in the shared folder (register the test with withShared)`);
  return p;
}

export function tempDir(prefix = 'blockprune-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** The rows of a [rows, width] int64 tensor (generated ids) as numbers. */
export function rows(t: TensorData): number[][] {
  const [n, width] = t.shape;
  const d = t.data as BigInt64Array;
  return [...Array(n).keys()].map((r) => [...d.subarray(r * width, (r + 1) * width)].map(Number));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Compares a tensor to its expected value, logs the max abs difference, asserts within `atol`. */
export function expectClose(t: ExecutionContext, name: string, actual: TensorData, expected: TensorData, atol: number): void {
  t.deepEqual(actual.shape, expected.shape, `${name} shape`);
  const d = maxAbsDiff(actual.data as Float32Array, expected.data as Float32Array);
  t.log(`${name}: max |diff| = ${d.toExponential(3)} (atol ${atol})`);
  t.true(d <= atol, `${name}: max |diff| ${d} > ${atol}`);
}

/** The call fails with `code` and a message matching `message`, whether it throws or rejects. */
export async function rejects(t: ExecutionContext, call: () => Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const e: any = await t.throwsAsync(async () => call());
  t.is(e?.code, code, String(e?.message));
  t.regex(String(e?.message), message);
}

/** Every tensor of a safetensors file (fixtures). */
export async function readTensors(path: string): Promise<Record<string, TensorData>> {
  return (await native().readSafetensors(path)).tensors;
}

/** The batch of a fixture's io.safetensors (int64 inputs as stored), with its labels when asked. */
export function fixtureBatch(io: Record<string, TensorData>, withLabels = true) {
  const [batchSize, seqLen] = io.input_ids.shape;
  return {
    inputIds: io.input_ids.data as BigInt64Array,
    attentionMask: io.attention_mask.data as BigInt64Array,
    // DistilBERT fixtures have no token types.
    tokenTypeIds: io.token_type_ids ? (io.token_type_ids.data as BigInt64Array) : undefined,
    batchSize,
    seqLen,
    labels: withLabels && io.labels ? (io.labels.data as BigInt64Array) : undefined,
  };
}

/** Writes a safetensors file (keys in the given order, offsets packed) for tests that craft weights. */
export function writeSafetensorsFile(path: string, tensors: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }>): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, ...parts]));
}

/** bert-base-uncased's vocabulary cut to `size` tokens (the fixtures' vocab_size is 1024). */
export function cutVocab(vocabTxt: string, size: number): string[] {
  const all = readFileSync(vocabTxt, 'utf8').split('\n').filter((l) => l.length > 0);
  const ascii = (s: string) => /^[\x21-\x7e]+$/.test(s);
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  vocab.push(...all.filter((tok) => tok.length === 1 && ascii(tok)));
  vocab.push(...all.filter((tok) => tok.length === 3 && tok.startsWith('##') && ascii(tok)));
  for (const tok of all) {
    if (vocab.length >= size) break;
    if (tok.length > 1 && !tok.startsWith('[') && !tok.startsWith('##')) vocab.push(tok);
  }
  return vocab.slice(0, size);
}

/** What `call` got back: status, headers, the body parsed as JSON ({ unparsed } when it is not), and the time it took. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  ms: number;
}

/** One HTTP request to 127.0.0.1:port (no keep-alive unless `opts.agent`). */
export function call(port: number, method: string, path: string, body?: unknown, opts: { agent?: Agent | false; headers?: Record<string, string | number> } = {}): Promise<Reply> {
  const payload = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
    if (payload !== undefined && !('transfer-encoding' in headers)) headers['content-length'] = Buffer.byteLength(payload);
    const req = request({ host: '127.0.0.1', port, method, path, agent: opts.agent ?? false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = { unparsed: text };
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json, ms: performance.now() - t0 });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Runs the built `blockprune` command line (dist/lib/cli/main.js) with `args`: its exit code, stdout and stderr. */
export function runCli(args: readonly string[], timeoutMs = 120_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'dist', 'lib', 'cli', 'main.js'), ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * A T5-shaped tokenizer.json (SentencePiece Unigram behind Metaspace; `$A </s>` / `$A </s> $B </s>`) over
 * `vocab`, whose first three pieces are `<pad>`, `</s>` and `<unk>` (ids 0, 1, 2).
 */
export function t5TokenizerJson(vocab: Array<[string, number]>): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const seq = (id: string) => ({ Sequence: { id, type_id: 0 } });
  const eos = { SpecialToken: { id: '</s>', type_id: 0 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', add_prefix_space: true },
    post_processor: { type: 'TemplateProcessing', single: [seq('A'), eos], pair: [seq('A'), eos, seq('B'), eos], special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } } },
    decoder: { type: 'Metaspace', replacement: '▁', add_prefix_space: true },
    model: { type: 'Unigram', unk_id: 2, vocab },
  };
}
