/**
 * The child process of test/fuzz.test.ts (not a test file itself): mutates the tiny fixture checkpoints
 * (model.safetensors, config.json, pytorch_model.bin) and the bert-base-uncased tokenizer files
 * (tokenizer.json, tokenizer_config.json, vocab.txt), writes each mutated set into a temp directory and feeds
 * it to the loaders: readSafetensors(), BertModel.fromPretrained() (+ one small forward when it loads) and
 * loadTokenizer() (+ encoding). Every case must end in success or a thrown Error; a crash, a hang or a huge
 * allocation kills this process, and the parent reports the case it was running.
 *
 * Every case is a pure function of (seed, case index): `BLOCKPRUNE_FUZZ_SEED=<s> BLOCKPRUNE_FUZZ_CASE=<i>
 * node dist/test/fuzz-worker.js` replays one case and prints its outcome (the parent prints that command).
 *
 * Environment:
 *   BLOCKPRUNE_FUZZ_SEED       seed (default 20240611)
 *   BLOCKPRUNE_FUZZ_SECONDS    time budget of the run (default 40)
 *   BLOCKPRUNE_FUZZ_MAX_CASES  case cap (default 20000)
 *   BLOCKPRUNE_FUZZ_CASE       run only this case index, verbosely
 *   BLOCKPRUNE_FUZZ_RSS_MB     resident-memory guard (default 4096): above it the process kills itself
 *   BLOCKPRUNE_FUZZ_START      first case index (the parent resumes after a crash with it)
 *   BLOCKPRUNE_FUZZ_REGRESSIONS=1  run the fixed regression cases instead of random ones (with
 *                              BLOCKPRUNE_FUZZ_CASE=<n>: only case R<n>)
 *
 * Protocol on stdout (written synchronously, so the last line survives a crash):
 *   CASE <i> <target> <base> <mutation; mutation...>   before a case runs
 *   END <i> <ok|err> <step:code,...> <ms>              after it
 *   RSS <mb> <i>                                        the guard fired (the process then SIGKILLs itself)
 *   SUMMARY <json>                                      at the end
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { loadTokenizer } from '../../lib/model/pipelines';
import { readSafetensors, setNumThreads } from '../../lib/index';
import { DATA, FIXTURES, tempDir } from '../helpers';

// ---------------------------------------------------------------------------------------------------------
// PRNG: Park–Miller (minimal standard, multiplier 48271), one generator per case.

export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = (Math.abs(Math.floor(seed)) % 2147483646) + 1;
  }
  next(): number {
    this.x = (this.x * 48271) % 2147483647;
    return this.x;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return (this.next() - 1) / 2147483646;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.float() * n));
  }
  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  /** Picks by weight from [weight, value] pairs. */
  weighted<T>(a: ReadonlyArray<readonly [number, T]>): T {
    const total = a.reduce((s, [w]) => s + w, 0);
    let r = this.float() * total;
    for (const [w, v] of a) {
      if (r < w) return v;
      r -= w;
    }
    return a[a.length - 1][1];
  }
}

/** The seed of case `index` (a 32-bit mix of the run seed and the index). */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ ((index + 0x9e3779b9) >>> 0), 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h;
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

interface ModelBase {
  name: string;
  configText: string;
  /** model.safetensors split into its parts. */
  header: Record<string, any>;
  data: Buffer;
}

interface BinBase {
  name: string;
  configText: string;
  bin: Buffer;
  /** Where data.pkl lies in the zip, and where its CRC-32 is recorded (local and central headers). */
  pkl: { start: number; size: number; crcAt: number[] } | undefined;
}

interface TokBase {
  tokenizerJson: string;
  vocabTxt: string;
}

interface Bases {
  models: ModelBase[];
  bin: BinBase | undefined;
  tok: TokBase | undefined;
}

function loadModelBase(name: string, dir: string): ModelBase {
  const st = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(st.readBigUInt64LE(0));
  return {
    name,
    configText: readFileSync(join(dir, 'config.json'), 'utf8'),
    header: JSON.parse(st.subarray(8, 8 + n).toString('utf8')),
    data: st.subarray(8 + n),
  };
}

/** Finds data.pkl in a (stored, non-zip64) torch.save archive. */
function locatePickle(zip: Buffer): BinBase['pkl'] {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) return undefined;
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries && p + 46 <= zip.length && zip.readUInt32LE(p) === 0x02014b50; i++) {
    const method = zip.readUInt16LE(p + 10);
    const size = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    if (name.endsWith('/data.pkl') && method === 0 && zip.readUInt32LE(local) === 0x04034b50) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      return { start, size, crcAt: [p + 16, local + 14] };
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  return undefined;
}

function loadBases(): Bases {
  const models: ModelBase[] = [];
  // cls and qa are the brief's inputs; the others add pruned heads and a bare (unprefixed) checkpoint.
  for (const name of ['bert-tiny-cls', 'bert-tiny-qa', 'bert-tiny-pruned-heads', 'bert-tiny-bare']) {
    const dir = FIXTURES ? join(FIXTURES, name) : '';
    if (dir && existsSync(join(dir, 'model.safetensors'))) models.push(loadModelBase(name, dir));
  }
  let bin: BinBase | undefined;
  const binDir = FIXTURES ? join(FIXTURES, 'bert-tiny-cls-bin') : '';
  if (binDir && existsSync(join(binDir, 'pytorch_model.bin'))) {
    const b = readFileSync(join(binDir, 'pytorch_model.bin'));
    bin = { name: 'bert-tiny-cls-bin', configText: readFileSync(join(binDir, 'config.json'), 'utf8'), bin: b, pkl: locatePickle(b) };
  }
  let tok: TokBase | undefined;
  const tokDir = DATA ? join(DATA, 'bert-base-uncased') : '';
  if (tokDir && existsSync(join(tokDir, 'tokenizer.json')) && existsSync(join(tokDir, 'vocab.txt'))) {
    tok = { tokenizerJson: readFileSync(join(tokDir, 'tokenizer.json'), 'utf8'), vocabTxt: readFileSync(join(tokDir, 'vocab.txt'), 'utf8') };
  }
  return { models, bin, tok };
}

// ---------------------------------------------------------------------------------------------------------
// Hostile values

const HOSTILE_NUMBERS: unknown[] = [
  -1, 0, 1, 3, 1.5, -0.5, 1e12, 2 ** 24, 2 ** 26, 1e8, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 2 ** 63, -(2 ** 63), 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER,
];
const HOSTILE_OTHER: unknown[] = ['32', 'NaN', 'Infinity', '-Infinity', '1e12', '', null, true, false, [], [32], {}, { value: 32 }];
/** Raw JSON literals that JSON.stringify cannot produce (some are not JSON at all). */
const RAW_LITERALS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '0x20', '1_000', '18446744073709551616', '-9223372036854775809', '99999999999999999999999999', '1e-400', '007', '+5', '.5'];

function hostileValue(r: Rng): unknown {
  return r.chance(0.6) ? r.pick(HOSTILE_NUMBERS) : r.pick(HOSTILE_OTHER);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function deepNesting(r: Rng): string {
  const n = r.pick([1000, 100_000, 1_000_000]);
  return r.chance(0.5) ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n);
}

function garbage(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** Byte-level damage to a text file: truncation, flips, garbage, empty. */
function damageText(r: Rng, text: string, what: string, desc: string[]): Buffer {
  const buf = Buffer.from(text, 'utf8');
  const op = r.pick(['truncate', 'flip', 'garbage', 'empty', 'nesting', 'bom', 'nul', 'toplevel'] as const);
  switch (op) {
    case 'truncate': {
      const at = r.int(buf.length);
      desc.push(`${what}: truncated at ${at}/${buf.length}`);
      return buf.subarray(0, at);
    }
    case 'flip': {
      const out = Buffer.from(buf);
      const n = r.range(1, 8);
      for (let i = 0; i < n; i++) out[r.int(out.length)] ^= r.range(1, 255);
      desc.push(`${what}: ${n} byte flips`);
      return out;
    }
    case 'garbage': {
      const n = r.pick([1, 7, 100, 4096]);
      desc.push(`${what}: ${n} random bytes`);
      return garbage(r, n);
    }
    case 'empty':
      desc.push(`${what}: empty`);
      return Buffer.alloc(0);
    case 'nesting': {
      const s = deepNesting(r);
      desc.push(`${what}: nesting ${s.slice(0, 5)}... x${s.length}`);
      return Buffer.from(s);
    }
    case 'bom':
      desc.push(`${what}: UTF-8 BOM prefix`);
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf]);
    case 'nul': {
      const at = r.int(buf.length);
      desc.push(`${what}: NUL/invalid UTF-8 at ${at}`);
      return Buffer.concat([buf.subarray(0, at), Buffer.from([0, 0xff, 0xfe, 0xc3]), buf.subarray(at)]);
    }
    case 'toplevel': {
      const v = r.pick(['[]', 'null', '5', '"config"', 'true', '{}', '[{}]']);
      desc.push(`${what}: top level ${v}`);
      return Buffer.from(v);
    }
  }
}

/** Replaces the value of `"key":` in JSON text with a raw literal (NaN, 1e999, ...). */
function injectRaw(text: string, key: string, literal: string): string | undefined {
  const re = new RegExp(`("${key}"\\s*:\\s*)(-?[0-9.eE+-]+|"[^"]*"|true|false|null)`);
  return re.test(text) ? text.replace(re, `$1${literal}`) : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// safetensors

const ST_DTYPES: unknown[] = ['F13', 'f32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'U64', '', 'F32 ', 7, null, ['F32']];

function tensorKeys(h: Record<string, any>): string[] {
  return Object.keys(h).filter((k) => k !== '__metadata__' && h[k] && typeof h[k] === 'object' && Array.isArray(h[k].shape));
}

function editHeader(r: Rng, h: Record<string, any>, b: ModelBase, desc: string[]): void {
  const keys = tensorKeys(h);
  if (keys.length === 0) {
    desc.push('header: (no tensors left)');
    return;
  }
  const k = r.pick(keys);
  const e = h[k];
  const shape: number[] = Array.isArray(e.shape) ? e.shape : [];
  const op = r.pick([
    'dtype', 'dtype-consistent', 'shape', 'shape-reshape', 'offsets', 'overlap', 'shift', 'delete', 'add', 'rename', 'metadata', 'not-object', 'field-missing',
  ] as const);
  switch (op) {
    case 'dtype': {
      e.dtype = r.pick(ST_DTYPES);
      desc.push(`header: ${k}.dtype=${describe(e.dtype)}`);
      return;
    }
    case 'dtype-consistent': {
      // Same byte size, other dtype: the header stays self-consistent and the loader must judge the dtype.
      const last = shape.length ? shape[shape.length - 1] : 1;
      const choice = r.pick(['I32', 'U8', 'I8', 'BOOL', 'F16', 'BF16', 'F64', 'I64'] as const);
      const ns = [...shape];
      if (choice === 'I32') e.dtype = 'I32';
      else if (['U8', 'I8', 'BOOL'].includes(choice) && ns.length) (e.dtype = choice), (ns[ns.length - 1] = last * 4);
      else if (['F16', 'BF16'].includes(choice) && ns.length) (e.dtype = choice), (ns[ns.length - 1] = last * 2);
      else if (['F64', 'I64'].includes(choice) && ns.length && last % 2 === 0) (e.dtype = choice), (ns[ns.length - 1] = last / 2);
      else e.dtype = 'I32';
      e.shape = ns;
      desc.push(`header: ${k} as ${e.dtype} ${JSON.stringify(ns)}`);
      return;
    }
    case 'shape': {
      const variants: unknown[] = [
        [],
        shape.map((d, i) => (i === 0 ? d + 1 : d)),
        shape.map((d, i) => (i === 0 ? d - 1 : d)),
        shape.map((d) => -d),
        [2 ** 53],
        [1e20],
        [1.5, 2],
        ['32', '32'],
        null,
        'x',
        [0, 2 ** 62],
        [2 ** 62, 2 ** 62, 0],
        [2 ** 32, 2 ** 32],
        [0],
        [...shape, ...new Array(r.pick([40, 1000])).fill(1)],
      ];
      e.shape = r.pick(variants);
      desc.push(`header: ${k}.shape=${describe(e.shape)}`);
      return;
    }
    case 'shape-reshape': {
      // Same element count, other shape: the file is valid, the model must refuse it (or accept a square transpose).
      const n = shape.reduce((a, d) => a * d, 1);
      e.shape = r.pick([[n], [...shape].reverse(), [1, n], [n, 1], shape.length === 2 ? [shape[0] / 2, shape[1] * 2] : [n, 1, 1]]);
      if ((e.shape as number[]).some((d: number) => !Number.isInteger(d))) e.shape = [n];
      desc.push(`header: ${k}.shape ${JSON.stringify(shape)} -> ${JSON.stringify(e.shape)}`);
      return;
    }
    case 'offsets': {
      const [b0, b1] = Array.isArray(e.data_offsets) ? e.data_offsets : [0, 0];
      const variants: unknown[] = [
        [b0, b1 + (1 << 20)],
        [b1, b0],
        [-1, b1],
        [b0, -4],
        [0, 2 ** 64],
        [1e30, 1e30],
        [b0],
        [b0, b1, b1],
        ['0', String(b1)],
        null,
        [b0 + 0.5, b1 + 0.5],
        [b0, b1 - 1],
        [b0 + 1, b1 + 1],
        [2 ** 63, 2 ** 63 + b1 - b0],
        [b.data.length, b.data.length + b1 - b0],
      ];
      e.data_offsets = r.pick(variants);
      desc.push(`header: ${k}.data_offsets=${describe(e.data_offsets)}`);
      return;
    }
    case 'overlap': {
      const other = h[r.pick(keys)];
      e.data_offsets = Array.isArray(other.data_offsets) ? [...other.data_offsets] : other.data_offsets;
      if (r.chance(0.5)) (e.shape = other.shape), (e.dtype = other.dtype);
      desc.push(`header: ${k} aliases the bytes of another tensor`);
      return;
    }
    case 'shift': {
      const d = r.pick([-8, -4, -1, 1, 4, 8]);
      if (Array.isArray(e.data_offsets)) e.data_offsets = e.data_offsets.map((x: number) => x + d);
      desc.push(`header: ${k}.data_offsets shifted by ${d}`);
      return;
    }
    case 'delete':
      delete h[k];
      desc.push(`header: deleted ${k}`);
      return;
    case 'add': {
      const end = b.data.length;
      const name = r.pick([
        'bert.encoder.layer.0.attention.self.rotary.weight', 'cls.predictions.bias', 'bert.embeddings.position_ids', '', '\u0000', 'é'.repeat(300), 'classifier.weight', 'qa_outputs.weight',
        '__proto__', 'constructor', 'toString',
      ]);
      // defineProperty: a plain assignment of '__proto__' would set the prototype instead of adding a key.
      Object.defineProperty(h, name, { value: { dtype: 'F32', shape: [0], data_offsets: [end, end] }, enumerable: true, writable: true, configurable: true });
      desc.push(`header: added empty tensor ${JSON.stringify(name.slice(0, 40))}`);
      return;
    }
    case 'rename': {
      const nk = r.chance(0.5) ? k.replace(/\d/, (m) => String((Number(m) + 1 + r.int(5)) % 10)) : k.toUpperCase();
      if (nk !== k) {
        h[nk] = e;
        delete h[k];
      }
      desc.push(`header: renamed ${k} -> ${nk}`);
      return;
    }
    case 'metadata': {
      const proto = JSON.parse('{"__proto__": "x", "constructor": "y"}');
      const v = r.pick<unknown>([undefined, 5, 'pt', [], { format: 5 }, { format: 'pt', extra: 'x' }, { a: { b: 'c' } }, null, proto]);
      if (v === undefined) delete h.__metadata__;
      else h.__metadata__ = v;
      desc.push(`header: __metadata__=${describe(v)}`);
      return;
    }
    case 'not-object': {
      h[k] = r.pick<unknown>([5, 'F32', null, [], [e]]);
      desc.push(`header: ${k}=${describe(h[k])}`);
      return;
    }
    case 'field-missing': {
      const f = r.pick(['dtype', 'shape', 'data_offsets']);
      delete e[f];
      desc.push(`header: ${k} lacks ${f}`);
      return;
    }
  }
}

/** A raw header text that replaces the JSON (length prefix kept consistent unless said otherwise). */
function rawHeader(r: Rng, h: Record<string, any>, desc: string[]): Buffer {
  const text = JSON.stringify(h);
  const op = r.pick(['truncated', 'not-json', 'nesting', 'duplicate', 'trailing', 'padding', 'utf8', 'nul'] as const);
  switch (op) {
    case 'truncated': {
      const at = r.int(text.length);
      desc.push(`header text truncated at ${at}`);
      return Buffer.from(text.slice(0, at));
    }
    case 'not-json': {
      const v = r.pick(['', ' ', '{', '[]', 'null', '5', '"x"', '{"a":1}', '{}', 'garbage', '{"a": NaN}']);
      desc.push(`header text ${JSON.stringify(v)}`);
      return Buffer.from(v);
    }
    case 'nesting': {
      const s = deepNesting(r);
      desc.push(`header text nesting x${s.length}`);
      return Buffer.from(s);
    }
    case 'duplicate': {
      // The same key twice, the second time with other offsets: JSON parsers keep one of them.
      const keys = tensorKeys(h);
      const k = r.pick(keys);
      const dup = { ...h[k], data_offsets: r.pick([[0, 4], h[keys[0]].data_offsets, [0, 0]]) };
      desc.push(`header: duplicate key ${k}`);
      return Buffer.from(`{${JSON.stringify(k)}:${JSON.stringify(dup)},${text.slice(1)}`);
    }
    case 'trailing': {
      const v = r.pick(['x', '}', ',', '\u0000', '{}']);
      desc.push(`header text + trailing ${JSON.stringify(v)}`);
      return Buffer.from(text + v);
    }
    case 'padding':
      desc.push('header text padded with spaces');
      return Buffer.from(text + ' '.repeat(r.range(1, 64)));
    case 'utf8': {
      const at = r.int(text.length);
      desc.push(`header text: invalid UTF-8 at ${at}`);
      return Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xff, 0xc0, 0x80]), Buffer.from(text.slice(at))]);
    }
    case 'nul': {
      const at = r.int(text.length);
      desc.push(`header text: NUL at ${at}`);
      return Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0]), Buffer.from(text.slice(at))]);
    }
  }
}

function mutateSafetensors(r: Rng, b: ModelBase, desc: string[]): Buffer {
  const h: Record<string, any> = JSON.parse(JSON.stringify(b.header));
  let headerBytes: Buffer | undefined;
  let lenOverride: bigint | undefined;
  let data = b.data;
  const post: Array<(buf: Buffer) => Buffer> = [];
  const n = r.chance(0.3) ? r.range(2, 3) : 1;
  for (let m = 0; m < n; m++) {
    const op = r.weighted([
      [6, 'header'],
      [1.5, 'raw'],
      [1, 'length'],
      [2, 'flip'],
      [2, 'truncate'],
      [1, 'nan'],
      [0.5, 'append'],
      [0.3, 'empty'],
    ] as const);
    switch (op) {
      case 'header':
        editHeader(r, h, b, desc);
        break;
      case 'raw':
        headerBytes = rawHeader(r, h, desc);
        break;
      case 'length': {
        const v = r.pick<bigint | 'off'>([0n, 1n, 2n, (1n << 63n), (1n << 64n) - 1n, BigInt(100 * 1024 * 1024 + 1), 'off']);
        lenOverride = v === 'off' ? -1n : v;
        desc.push(`length prefix ${v === 'off' ? 'off by a few bytes' : v.toString()}`);
        break;
      }
      case 'flip': {
        const region = r.pick(['prefix', 'header', 'data', 'any'] as const);
        const count = r.range(1, 8);
        desc.push(`${count} byte flips in ${region}`);
        post.push((buf) => {
          const out = Buffer.from(buf);
          const hl = Math.min(Number(buf.length >= 8 ? buf.readBigUInt64LE(0) & 0xffffffn : 0n), buf.length - 8);
          const [lo, hi] = region === 'prefix' ? [0, 8] : region === 'header' ? [8, 8 + hl] : region === 'data' ? [8 + hl, buf.length] : [0, buf.length];
          if (hi <= lo) return out;
          for (let i = 0; i < count; i++) out[lo + r.int(hi - lo)] ^= r.range(1, 255);
          return out;
        });
        break;
      }
      case 'truncate': {
        const frac = r.float();
        const where = r.pick(['prefix', 'header', 'data', 'last byte'] as const);
        desc.push(`truncated in ${where} (${frac.toFixed(3)})`);
        post.push((buf) => {
          const hl = buf.length >= 8 ? Math.min(Number(buf.readBigUInt64LE(0) & 0xffffffn), buf.length - 8) : 0;
          const at =
            where === 'prefix' ? Math.floor(frac * 8) : where === 'header' ? 8 + Math.floor(frac * hl) : where === 'data' ? 8 + hl + Math.floor(frac * (buf.length - 8 - hl)) : buf.length - 1;
          return buf.subarray(0, Math.max(0, Math.min(at, buf.length)));
        });
        break;
      }
      case 'nan': {
        const keys = tensorKeys(h).filter((k) => h[k].dtype === 'F32' && Array.isArray(h[k].data_offsets));
        if (keys.length === 0) break;
        const k = r.pick(keys);
        const [b0, b1] = h[k].data_offsets as number[];
        if (b1 - b0 < 4 || b1 > data.length) break;
        data = Buffer.from(data);
        const at = b0 + 4 * r.int((b1 - b0) / 4);
        data.writeFloatLE(r.pick([NaN, Infinity, -Infinity, 3.4e38]), at);
        desc.push(`non-finite/huge float in ${k}`);
        break;
      }
      case 'append':
        desc.push('16 bytes appended');
        post.push((buf) => Buffer.concat([buf, Buffer.alloc(16, 0x41)]));
        break;
      case 'empty':
        desc.push('zero-length file');
        post.push(() => Buffer.alloc(0));
        break;
    }
  }
  const hb = headerBytes ?? Buffer.from(JSON.stringify(h), 'utf8');
  const len = Buffer.alloc(8);
  let lv = lenOverride ?? BigInt(hb.length);
  if (lv === -1n) lv = BigInt(Math.max(0, hb.length + r.pick([-8, -2, -1, 1, 2, 8])));
  len.writeBigUInt64LE(lv);
  let out: Buffer = Buffer.concat([len, hb, data]);
  for (const f of post) out = f(out);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// config.json

const CONFIG_INT_FIELDS = [
  'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings', 'type_vocab_size', 'pad_token_id', 'num_labels',
];
const CONFIG_NUM_FIELDS = ['layer_norm_eps', 'hidden_dropout_prob', 'attention_probs_dropout_prob', 'initializer_range'];

/** Field combinations that would need a huge model if the loader built it before checking the weights. */
const HUGE_COMBOS: Array<Record<string, unknown>> = [
  { num_labels: 2 ** 32 },
  { num_labels: 2 ** 30 },
  { num_labels: 1e12 },
  { num_hidden_layers: 1000, intermediate_size: 2 ** 30 },
  { num_hidden_layers: 1000 },
  { num_hidden_layers: 1000, intermediate_size: 2 ** 26 },
  { num_hidden_layers: 200, intermediate_size: 1e8 },
  { num_labels: 2 ** 27, architectures: ['BertForSequenceClassification'] },
  { intermediate_size: 2 ** 40 },
  { max_position_embeddings: 2 ** 40 },
  { max_position_embeddings: 2 ** 33 },
  { type_vocab_size: 2 ** 33 },
  { vocab_size: 2 ** 24, hidden_size: 65536 },
  { hidden_size: 65536, num_hidden_layers: 1000 },
  { hidden_size: 65536, intermediate_size: 2 ** 20 },
  { intermediate_sizes: [2 ** 40, 2 ** 40] },
];

function mutateConfigObject(r: Rng, c: Record<string, any>, desc: string[]): void {
  const op = r.weighted([
    [2, 'delete'],
    [4, 'hostile'],
    [1, 'heads'],
    [1, 'hidden'],
    [1, 'layers'],
    [2, 'huge'],
    [2, 'pruned_heads'],
    [2, 'intermediate_sizes'],
    [1, 'act'],
    [1, 'floats'],
    [1, 'pad'],
    [1, 'types'],
    [1, 'labels'],
    [1, 'plan'],
  ] as const);
  switch (op) {
    case 'delete': {
      const k = r.pick(Object.keys(c));
      delete c[k];
      desc.push(`config: deleted ${k}`);
      return;
    }
    case 'hostile': {
      const k = r.pick([...CONFIG_INT_FIELDS, ...CONFIG_NUM_FIELDS]);
      c[k] = hostileValue(r);
      desc.push(`config: ${k}=${describe(c[k])}`);
      return;
    }
    case 'heads':
      c.num_attention_heads = r.pick([0, -4, 3, 5, 7, 8, 16, 32, 33, 64, 2 ** 31]);
      desc.push(`config: num_attention_heads=${c.num_attention_heads}`);
      return;
    case 'hidden':
      c.hidden_size = r.pick([0, 16, 48, 64, 31, 65536, 65537, 131072]);
      desc.push(`config: hidden_size=${c.hidden_size}`);
      return;
    case 'layers':
      c.num_hidden_layers = r.pick([0, 1, 3, 12, 1000, 1001]);
      desc.push(`config: num_hidden_layers=${c.num_hidden_layers}`);
      return;
    case 'huge': {
      const combo = r.pick(HUGE_COMBOS);
      Object.assign(c, combo);
      desc.push(`config: ${describe(combo)}`);
      return;
    }
    case 'pruned_heads': {
      c.pruned_heads = r.pick<unknown>([
        { '0': [99] },
        { '5': [0] },
        { '-1': [0] },
        { '0': [-1] },
        { x: [0] },
        { '0': '1' },
        { '0': [0, 1, 2, 3] },
        { '0': [1.5] },
        { '99999999999999999999': [0] },
        { '0': [2 ** 53] },
        { '0': [0, 0, 0] },
        { '1': [0], '0': [1] },
        { ' 0': [1] },
        { '0x1': [1] },
        { '': [1] },
        [],
        'str',
        5,
        null,
        {},
      ]);
      desc.push(`config: pruned_heads=${describe(c.pruned_heads)}`);
      return;
    }
    case 'intermediate_sizes': {
      const w = typeof c.intermediate_size === 'number' ? c.intermediate_size : 64;
      c.intermediate_sizes = r.pick<unknown>([[w], [w, w, w], [-1, w], [0, 0], [String(w), String(w)], [1e12, w], 'x', [w, w], [w / 2, w], [1.5, w], [], null, {}]);
      desc.push(`config: intermediate_sizes=${describe(c.intermediate_sizes)}`);
      return;
    }
    case 'act':
      c.hidden_act = r.pick<unknown>(['gelu_fast', 5, null, '', 'relu', 'tanh', 'silu', 'gelu_new', 'GELU', ['gelu']]);
      desc.push(`config: hidden_act=${describe(c.hidden_act)}`);
      return;
    case 'floats': {
      const k = r.pick(CONFIG_NUM_FIELDS);
      c[k] = r.pick<unknown>([0, -1, 1, 1.5, 1e300, -0.1, 0.99, 1e-300, 'x']);
      desc.push(`config: ${k}=${describe(c[k])}`);
      return;
    }
    case 'pad':
      c.pad_token_id = r.pick([-1, 1023, 1024, 2 ** 40, 100]);
      desc.push(`config: pad_token_id=${c.pad_token_id}`);
      return;
    case 'types': {
      const k = r.pick(['model_type', 'position_embedding_type', 'architectures']);
      c[k] = r.pick<unknown>(['roberta', 'relative_key', 5, null, ['BertForQuestionAnswering'], ['BertForSequenceClassification'], [5], 'bert', 'absolute', ['BertModel']]);
      desc.push(`config: ${k}=${describe(c[k])}`);
      return;
    }
    case 'labels': {
      let v = r.pick<unknown>([5, {}, { '0': 'a' }, { '0': 'a', '1': 'b', '2': 'c' }, 'big', 'x', { '-1': 5 }]);
      if (v === 'big') v = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [String(i), `L${i}`]));
      c.id2label = v;
      if (r.chance(0.3)) c.num_labels = r.pick([0, 1, 3, -2, 2 ** 31]);
      desc.push(`config: id2label=${describe(v)}${'num_labels' in c ? ` num_labels=${describe(c.num_labels)}` : ''}`);
      return;
    }
    case 'plan': {
      const q = 'bert.encoder.layer.0.attention.self.query';
      c.pruning_plan = r.pick<unknown>([
        { modules: 5 },
        { modules: [{ module: 'nope' }] },
        { modules: [{ module: q, method: 'topK', blockRows: 0 }] },
        { modules: [{ module: q, method: 'topK', blockRows: 2 ** 40, blockCols: 1 }] },
        { modules: [{ module: q, shareWith: q }] },
        { modules: [{ module: q, layout: 'rows', init: 'x' }] },
        { modules: [{ module: q, method: 'sigmoied_threshold', layout: 'block', blockRows: 32, blockCols: 32 }] },
        { modules: [], threshold: 'x' },
        { modules: [{ module: q }, { module: q }] },
        5,
        'plan',
      ]);
      desc.push(`config: pruning_plan=${describe(c.pruning_plan)}`);
      return;
    }
  }
}

function mutateConfig(r: Rng, text: string, desc: string[]): Buffer {
  const kind = r.weighted([
    [7, 'object'],
    [1.5, 'raw'],
    [1.5, 'text'],
    [0.5, 'duplicate'],
    [0.5, 'deep'],
  ] as const);
  if (kind === 'text') return damageText(r, text, 'config.json', desc);
  const c = JSON.parse(text);
  if (kind === 'raw') {
    const k = r.pick([...CONFIG_INT_FIELDS.filter((f) => f in c), ...CONFIG_NUM_FIELDS.filter((f) => f in c)]);
    const lit = r.pick(RAW_LITERALS);
    const out = injectRaw(JSON.stringify(c, null, 2), k, lit);
    desc.push(`config: ${k}: ${lit} (raw)`);
    return Buffer.from(out ?? JSON.stringify(c));
  }
  if (kind === 'deep') {
    // Deep nesting inside one field (parsers cope; recursive copies and dumps of the value may not).
    const k = r.pick([...CONFIG_INT_FIELDS, 'pruned_heads', 'id2label', 'task_specific_params', 'pruning_plan']);
    const n = r.pick([65, 1000, 100_000]);
    desc.push(`config: ${k} nested ${n} levels`);
    return Buffer.from(`{"${k}": ${'['.repeat(n)}${']'.repeat(n)}, ${JSON.stringify(c).slice(1)}`);
  }
  if (kind === 'duplicate') {
    const k = r.pick(CONFIG_INT_FIELDS);
    const v = r.pick([0, 64, 7, 1000, 2 ** 32]);
    desc.push(`config: duplicate key ${k} (first ${v})`);
    return Buffer.from(`{"${k}": ${v}, ${JSON.stringify(c).slice(1)}`);
  }
  const n = r.chance(0.35) ? r.range(2, 4) : 1;
  for (let i = 0; i < n; i++) mutateConfigObject(r, c, desc);
  return Buffer.from(JSON.stringify(c, null, 2));
}

// ---------------------------------------------------------------------------------------------------------
// tokenizer.json / vocab.txt / tokenizer_config.json

const HOSTILE_IDS: unknown[] = [1e9, 2 ** 32, 2 ** 31, -1, 1.5, '5', null, 'NaN', 0, 1e300, Number.MAX_SAFE_INTEGER, 30522, 4294967295, -0, [], {}];

function mutateTokenizerJson(r: Rng, tj: Record<string, any>, desc: string[]): void {
  const isObj = (v: unknown): v is Record<string, any> => !!v && typeof v === 'object' && !Array.isArray(v);
  // An earlier mutation of this case may have replaced the model or its vocab: fall back to other edits.
  const model: Record<string, any> = isObj(tj.model) ? tj.model : {};
  const vocab: Record<string, unknown> = isObj(model.vocab) ? model.vocab : {};
  const op = r.weighted([
    [1, 'model'],
    [1, 'vocab-type'],
    [3, 'ids'],
    [1, 'special-ids'],
    [1.5, 'delete-special'],
    [1.5, 'added'],
    [1, 'normalizer'],
    [1, 'pre_tokenizer'],
    [1, 'post_processor'],
    [1, 'decoder'],
    [1.5, 'model-fields'],
    [0.5, 'long-token'],
  ] as const);
  switch (op) {
    case 'model': {
      const v = r.pick<unknown>([undefined, 5, null, 'WordPiece', [], { type: 'WordPiece' }]);
      if (v === undefined) delete tj.model;
      else tj.model = v;
      desc.push(`tokenizer.json: model=${describe(v)}`);
      return;
    }
    case 'vocab-type': {
      const v = r.pick<unknown>([[], null, 'x', {}, [['[UNK]', 0]], 5, undefined]);
      if (v === undefined) delete model.vocab;
      else model.vocab = v;
      desc.push(`tokenizer.json: model.vocab=${describe(v)}`);
      return;
    }
    case 'ids': {
      const keys = Object.keys(vocab).length ? Object.keys(vocab) : ['[UNK]'];
      const n = r.pick([1, 3, 100]);
      const v = r.pick(HOSTILE_IDS);
      for (let i = 0; i < n; i++) vocab[r.pick(keys)] = v;
      desc.push(`tokenizer.json: ${n} vocab ids=${describe(v)}`);
      return;
    }
    case 'special-ids': {
      const k = r.pick(['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]']);
      vocab[k] = r.pick(HOSTILE_IDS);
      desc.push(`tokenizer.json: vocab[${k}]=${describe(vocab[k])}`);
      return;
    }
    case 'delete-special': {
      const k = r.pick(['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]', '##s', 'the']);
      delete vocab[k];
      if (r.chance(0.5) && Array.isArray(tj.added_tokens)) tj.added_tokens = tj.added_tokens.filter((t: any) => !t || t.content !== k);
      desc.push(`tokenizer.json: deleted ${k}`);
      return;
    }
    case 'added': {
      const v = r.pick<unknown>([
        5,
        [5],
        [null],
        null,
        [{ content: 5, id: 'x' }],
        [{ content: '', id: 1e9, special: true, normalized: false }],
        [{ content: '[CLS]', id: -1, special: true, normalized: false }],
        [{ content: '(((', id: 5, special: true, normalized: false }],
        [{ content: '[', id: 2 ** 40, special: true, normalized: false }],
        [{ id: 3 }],
        [{ content: 'hello', id: 7592, special: false, normalized: 'x' }],
        [{ content: 'x'.repeat(100_000), id: 100, special: true, normalized: false }],
      ]);
      tj.added_tokens = v;
      desc.push(`tokenizer.json: added_tokens=${describe(v)}`);
      return;
    }
    case 'normalizer':
    case 'pre_tokenizer':
    case 'post_processor':
    case 'decoder': {
      const v = r.pick<unknown>([
        null,
        5,
        'x',
        { type: 'Nope' },
        { type: 'BertNormalizer', lowercase: 'yes', strip_accents: 5, clean_text: null },
        { type: 'Sequence', normalizers: 5, pretokenizers: 5 },
        { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated' },
        { type: 'Replace', pattern: { Regex: '[' }, content: 'x' },
        { type: 'TemplateProcessing', single: 5, pair: null, special_tokens: 5 },
        { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'NOPE', type_id: 0 } }], pair: [], special_tokens: {} },
        { type: 'WordPiece', prefix: 5 },
        { type: 'BertPreTokenizer' },
        [],
      ]);
      tj[op] = v;
      desc.push(`tokenizer.json: ${op}=${describe(v)}`);
      return;
    }
    case 'model-fields': {
      const k = r.pick(['max_input_chars_per_word', 'continuing_subword_prefix', 'unk_token', 'type']);
      const v = r.pick<unknown>([-1, 0, 1, 1e9, 'x', null, 5, '', '[CLS]', 'nope', 'BPE', 'Unigram', '##', [], undefined]);
      if (v === undefined) delete model[k];
      else model[k] = v;
      desc.push(`tokenizer.json: model.${k}=${describe(v)}`);
      return;
    }
    case 'long-token':
      vocab['a'.repeat(r.pick([1000, 1_000_000]))] = r.pick([5, 40000]);
      desc.push('tokenizer.json: a very long vocab token');
      return;
  }
}

function mutateVocab(r: Rng, text: string, desc: string[]): Buffer {
  const op = r.pick(['binary', 'empty', 'newlines', 'truncate', 'delete-lines', 'crlf', 'invalid-utf8', 'long-line', 'duplicates', 'only-specials'] as const);
  switch (op) {
    case 'binary': {
      const n = r.pick([1, 100, 10_000, 300_000]);
      desc.push(`vocab.txt: ${n} random bytes`);
      return garbage(r, n);
    }
    case 'empty':
      desc.push('vocab.txt: empty');
      return Buffer.alloc(0);
    case 'newlines': {
      const v = r.pick(['\n', '\n\n\n', '\r\n', '\r', ' ']);
      desc.push(`vocab.txt: ${JSON.stringify(v)}`);
      return Buffer.from(v);
    }
    case 'truncate': {
      const at = r.int(text.length);
      desc.push(`vocab.txt: truncated at ${at}`);
      return Buffer.from(text.slice(0, at));
    }
    case 'delete-lines': {
      const lines = text.split('\n');
      const n = r.pick([1, 10, 1000]);
      for (let i = 0; i < n; i++) lines.splice(r.int(Math.min(lines.length, r.chance(0.5) ? 110 : lines.length)), 1);
      desc.push(`vocab.txt: ${n} lines deleted`);
      return Buffer.from(lines.join('\n'));
    }
    case 'crlf':
      desc.push('vocab.txt: CRLF');
      return Buffer.from(text.replace(/\n/g, '\r\n'));
    case 'invalid-utf8': {
      const b = Buffer.from(text);
      for (let i = 0; i < 20; i++) b[r.int(b.length)] = r.pick([0, 0xff, 0xfe, 0xc3, 0x80]);
      desc.push('vocab.txt: NUL / invalid UTF-8 bytes');
      return b;
    }
    case 'long-line': {
      const at = text.indexOf('\n', r.int(text.length));
      desc.push('vocab.txt: a 1 MB line');
      return Buffer.from(text.slice(0, at + 1) + 'x'.repeat(1 << 20) + text.slice(at));
    }
    case 'duplicates': {
      desc.push('vocab.txt: specials repeated at the end');
      return Buffer.from(text + '[CLS]\n[SEP]\n[UNK]\n[PAD]\n');
    }
    case 'only-specials':
      desc.push('vocab.txt: only [UNK]');
      return Buffer.from('[UNK]\n');
  }
}

function mutateTokenizerConfig(r: Rng, desc: string[]): Buffer {
  const v = r.pick<string>([
    'x',
    '[]',
    'null',
    '{"do_lower_case": "yes"}',
    '{"unk_token": 5}',
    '{"cls_token": {"content": 5}}',
    '{"cls_token": "nope"}',
    '{"sep_token": {"content": "[CLS]"}}',
    '{"strip_accents": "x", "tokenize_chinese_chars": 5}',
    '{"model_max_length": 1e30}',
    '{"do_lower_case": false}',
    '',
  ]);
  desc.push(`tokenizer_config.json: ${JSON.stringify(v)}`);
  return Buffer.from(v);
}

// ---------------------------------------------------------------------------------------------------------
// pytorch_model.bin

let CRC_TABLE: Uint32Array | undefined;
function crc32(buf: Buffer): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Pickle opcodes worth planting (the unpickler knows some, refuses others). */
const PICKLE_OPS = [0x80, 0x2e, 0x28, 0x29, 0x5d, 0x7d, 0x71, 0x72, 0x68, 0x6a, 0x4b, 0x4d, 0x4a, 0x8a, 0x58, 0x63, 0x52, 0x62, 0x74, 0x75, 0x85, 0x86, 0x87, 0x51, 0x30, 0x31, 0x88, 0x89, 0x4e, 0x47, 0x8c, 0x94];

function mutateBin(r: Rng, b: BinBase, desc: string[]): Buffer {
  const out = Buffer.from(b.bin);
  const op = r.weighted([
    [5, 'pickle'],
    [1.5, 'flip'],
    [1.5, 'truncate'],
    [0.3, 'empty'],
    [0.5, 'append'],
  ] as const);
  if (op === 'pickle' && b.pkl) {
    // Damage data.pkl and fix its CRC-32, so the unpickler (not the zip reader) sees the bytes.
    const { start, size } = b.pkl;
    const n = r.range(1, 6);
    for (let i = 0; i < n; i++) {
      const at = start + r.int(size);
      out[at] = r.chance(0.5) ? r.pick(PICKLE_OPS) : r.chance(0.5) ? out[at] ^ r.range(1, 255) : r.pick([0, 0xff, 0x7f, 0x80]);
    }
    const crc = crc32(out.subarray(start, start + size));
    for (const at of b.pkl.crcAt) out.writeUInt32LE(crc, at);
    desc.push(`pytorch_model.bin: ${n} pickle bytes changed (CRC fixed)`);
    return out;
  }
  if (op === 'truncate') {
    const at = r.int(out.length);
    desc.push(`pytorch_model.bin: truncated at ${at}/${out.length}`);
    return out.subarray(0, at);
  }
  if (op === 'empty') {
    desc.push('pytorch_model.bin: empty');
    return Buffer.alloc(0);
  }
  if (op === 'append') {
    desc.push('pytorch_model.bin: garbage appended');
    return Buffer.concat([out, garbage(r, 100)]);
  }
  const n = r.range(1, 8);
  for (let i = 0; i < n; i++) out[r.int(out.length)] ^= r.range(1, 255);
  desc.push(`pytorch_model.bin: ${n} byte flips`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Cases

export type Target = 'safetensors' | 'config' | 'tokenizer' | 'bin';

interface CaseSpec {
  index: number | string;
  target: Target;
  base: string;
  desc: string[];
  files: Record<string, Buffer | string>;
  /** Which loaders to run. */
  model: boolean;
  tokenizer: boolean;
}

function makeCase(seed: number, index: number, bases: Bases): CaseSpec {
  const r = new Rng(caseSeed(seed, index));
  const targets: Array<[number, Target]> = [
    [4, 'safetensors'],
    [3, 'config'],
  ];
  if (bases.tok) targets.push([2, 'tokenizer']);
  if (bases.bin) targets.push([1, 'bin']);
  const target = r.weighted(targets);
  const desc: string[] = [];
  if (target === 'tokenizer') {
    const t = bases.tok as TokBase;
    const files: Record<string, Buffer | string> = {};
    const which = r.weighted([
      [6, 'json'],
      [2, 'json-text'],
      [3, 'vocab'],
      [1, 'config'],
    ] as const);
    if (which === 'json') {
      const tj = JSON.parse(t.tokenizerJson);
      const n = r.chance(0.3) ? r.range(2, 3) : 1;
      for (let i = 0; i < n; i++) mutateTokenizerJson(r, tj, desc);
      files['tokenizer.json'] = JSON.stringify(tj);
    } else if (which === 'json-text') {
      files['tokenizer.json'] = damageText(r, t.tokenizerJson, 'tokenizer.json', desc);
    } else if (which === 'vocab') {
      files['vocab.txt'] = mutateVocab(r, t.vocabTxt, desc);
    } else {
      if (r.chance(0.5)) files['tokenizer.json'] = t.tokenizerJson;
      else files['vocab.txt'] = t.vocabTxt;
      files['tokenizer_config.json'] = mutateTokenizerConfig(r, desc);
    }
    return { index, target, base: 'bert-base-uncased', desc, files, model: false, tokenizer: true };
  }
  if (target === 'bin') {
    const b = bases.bin as BinBase;
    const files: Record<string, Buffer | string> = { 'config.json': b.configText, 'pytorch_model.bin': mutateBin(r, b, desc) };
    if (r.chance(0.15)) files['config.json'] = mutateConfig(r, b.configText, desc);
    return { index, target, base: b.name, desc, files, model: true, tokenizer: false };
  }
  const b = r.pick(bases.models);
  const st = (): Buffer => Buffer.concat([lenPrefix(b), Buffer.from(JSON.stringify(b.header)), b.data]);
  if (target === 'config') {
    const files = { 'config.json': mutateConfig(r, b.configText, desc), 'model.safetensors': st() };
    return { index, target, base: b.name, desc, files, model: true, tokenizer: false };
  }
  if (r.chance(0.12)) return { index, target, base: b.name, desc, files: shardedCase(r, b, desc), model: true, tokenizer: false };
  const files: Record<string, Buffer | string> = { 'config.json': b.configText, 'model.safetensors': mutateSafetensors(r, b, desc) };
  if (r.chance(0.1)) files['config.json'] = mutateConfig(r, b.configText, desc);
  return { index, target, base: b.name, desc, files, model: true, tokenizer: false };
}

/** The base's tensors `keys` as a model part of its own (offsets repacked). */
function subset(b: ModelBase, keys: string[]): ModelBase {
  const header: Record<string, any> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const k of keys) {
    const [b0, b1] = b.header[k].data_offsets as number[];
    parts.push(b.data.subarray(b0, b1));
    header[k] = { ...b.header[k], data_offsets: [off, off + b1 - b0] };
    off += b1 - b0;
  }
  return { name: b.name, configText: b.configText, header, data: Buffer.concat(parts) };
}

/** A checkpoint sharded in two (model.safetensors.index.json + 2 shards), with the index or a shard damaged. */
function shardedCase(r: Rng, b: ModelBase, desc: string[]): Record<string, Buffer | string> {
  const keys = tensorKeys(b.header);
  const half = Math.floor(keys.length / 2);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const shards = [subset(b, keys.slice(0, half)), subset(b, keys.slice(half))];
  const weightMap: Record<string, unknown> = {};
  keys.forEach((k, i) => (weightMap[k] = names[i < half ? 0 : 1]));
  const files: Record<string, Buffer | string> = { 'config.json': b.configText };
  const shardBytes: Buffer[] = shards.map((sh) => Buffer.concat([lenPrefix(sh), Buffer.from(JSON.stringify(sh.header)), sh.data]));
  const index: Record<string, any> = { metadata: { total_size: b.data.length }, weight_map: weightMap };
  const op = r.pick(['shard', 'map-entry', 'map-type', 'escape', 'missing-shard', 'unmapped', 'text'] as const);
  let indexText: Buffer | undefined;
  switch (op) {
    case 'shard': {
      const i = r.int(2);
      shardBytes[i] = mutateSafetensors(r, shards[i], desc);
      desc.push(`(in shard ${i + 1} of 2)`);
      break;
    }
    case 'map-entry': {
      const k = r.pick(keys);
      weightMap[k] = r.pick<unknown>([5, null, names[0], names[1], '', 'model.safetensors', 'nope.safetensors', [names[0]]]);
      desc.push(`index: weight_map[${k}]=${describe(weightMap[k])}`);
      break;
    }
    case 'map-type':
      index.weight_map = r.pick<unknown>([5, [], null, 'x', {}]);
      desc.push(`index: weight_map=${describe(index.weight_map)}`);
      break;
    case 'escape': {
      const v = r.pick(['../model.safetensors', '/etc/passwd', 'a/b.safetensors', '..', 'config.json', '.']);
      weightMap[r.pick(keys)] = v;
      desc.push(`index: a shard named ${v}`);
      break;
    }
    case 'missing-shard':
      delete files[names[1]];
      shardBytes[1] = Buffer.alloc(0);
      desc.push('index: second shard missing');
      break;
    case 'unmapped': {
      const k = r.pick(keys);
      delete weightMap[k];
      desc.push(`index: ${k} not in weight_map`);
      break;
    }
    case 'text':
      indexText = damageText(r, JSON.stringify(index), 'index.json', desc);
      break;
  }
  files['model.safetensors.index.json'] = indexText ?? JSON.stringify(index);
  names.forEach((n, i) => {
    if (!(op === 'missing-shard' && i === 1)) files[n] = shardBytes[i];
  });
  return files;
}

function lenPrefix(b: ModelBase): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(JSON.stringify(b.header))));
  return len;
}

/** Hand-written cases for the bugs the fuzzer found (and close relatives): name, files, expected code. */
export function regressionCases(bases: Bases): Array<{ spec: CaseSpec; expect: string }> {
  const out: Array<{ spec: CaseSpec; expect: string }> = [];
  const cls = bases.models.find((m) => m.name === 'bert-tiny-cls');
  if (!cls) return out;
  const st = Buffer.concat([lenPrefix(cls), Buffer.from(JSON.stringify(cls.header)), cls.data]);
  const cfg = (edit: Record<string, unknown>, drop: string[] = []): string => {
    const c = { ...JSON.parse(cls.configText), ...edit };
    for (const k of drop) delete c[k];
    return JSON.stringify(c);
  };
  const noHead = (): Buffer => {
    const h = JSON.parse(JSON.stringify(cls.header));
    // Drop the classifier, keeping the buffer tiled: rebuild the file from the remaining tensors.
    const keys = tensorKeys(h).filter((k) => !k.startsWith('classifier.'));
    const parts: Buffer[] = [];
    const nh: Record<string, unknown> = {};
    let off = 0;
    for (const k of keys) {
      const [b0, b1] = h[k].data_offsets;
      parts.push(cls.data.subarray(b0, b1));
      nh[k] = { ...h[k], data_offsets: [off, off + b1 - b0] };
      off += b1 - b0;
    }
    const hb = Buffer.from(JSON.stringify(nh));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    return Buffer.concat([len, hb, ...parts]);
  };
  const add = (name: string, files: Record<string, Buffer | string>, expect: string, tokenizer = false) =>
    out.push({
      spec: { index: `R${out.length}`, target: tokenizer ? 'tokenizer' : 'config', base: cls.name, desc: [name], files, model: !tokenizer, tokenizer },
      expect,
    });
  const withConfig = (edit: Record<string, unknown>, drop?: string[]) => ({ 'config.json': cfg(edit, drop), 'model.safetensors': st });
  // The loader built (and randomly initialised, i.e. wrote) every tensor the config asked for before
  // comparing it with the weights: these asked for gigabytes.
  add('num_labels 2^32 with a classifier in the checkpoint', withConfig({ num_labels: 2 ** 32 }), 'load:E_BAD_CONFIG');
  add('num_labels 2^27 without a classifier (head created at random)', { 'config.json': cfg({ num_labels: 2 ** 27 }), 'model.safetensors': noHead() }, 'load:E_BAD_CONFIG');
  add('num_labels 4096 against a 2-label classifier', withConfig({ num_labels: 4096 }, ['id2label', 'label2id']), 'load:E_SHAPE');
  add('1000 layers of width 2^26 (only 2 in the checkpoint)', withConfig({ num_hidden_layers: 1000, intermediate_size: 2 ** 26 }), 'load:E_MISSING_TENSOR');
  add('1000 layers, intermediate_size 2^30', withConfig({ num_hidden_layers: 1000, intermediate_size: 2 ** 30 }), 'load:E_MISSING_TENSOR');
  add('hidden_size 65536, 1000 layers', withConfig({ hidden_size: 65536, num_hidden_layers: 1000 }), 'load:E_SHAPE');
  add('max_position_embeddings 2^26 (8 GiB of positions)', withConfig({ max_position_embeddings: 2 ** 26 }), 'load:E_SHAPE');
  add('max_position_embeddings 2^33', withConfig({ max_position_embeddings: 2 ** 33 }), 'load:E_SHAPE');
  add('type_vocab_size 2^26', withConfig({ type_vocab_size: 2 ** 26 }), 'load:E_SHAPE');
  add('vocab_size 2^24 with hidden_size 128', withConfig({ vocab_size: 2 ** 24, hidden_size: 128 }), 'load:E_SHAPE');
  add('vocab_size 2^24 with hidden_size 65536', withConfig({ vocab_size: 2 ** 24, hidden_size: 65536 }), 'load:E_SHAPE');
  // A config nested 100k levels deep parsed, then overflowed the worker thread's stack when copied (SIGSEGV).
  const deep = 100_000;
  add('config.json nested 100k levels', { 'config.json': '{"a":'.repeat(deep) + '1' + '}'.repeat(deep), 'model.safetensors': st }, 'load:E_BAD_CONFIG');
  add('a config field nested 100k levels', { 'config.json': `{"task_specific_params": ${'['.repeat(deep)}${']'.repeat(deep)}, ${cfg({}).slice(1)}`, 'model.safetensors': st }, 'load:E_BAD_CONFIG');
  // A negative initializer_range reached at::normal (E_TORCH) when the model was built.
  add('initializer_range -1', withConfig({ initializer_range: -1 }), 'load:E_BAD_CONFIG');
  // A pruning_plan in config.json that patch() refuses was an E_INVALID_ARG (an argument error) on load.
  add('pruning_plan naming no linear', withConfig({ pruning_plan: { modules: [{ module: 'nope' }] } }), 'load:E_BAD_CONFIG');
  if (bases.tok) {
    const tj = (edit: (j: Record<string, any>) => void): Record<string, string> => {
      const j = JSON.parse(bases.tok!.tokenizerJson);
      edit(j);
      return { 'tokenizer.json': JSON.stringify(j) };
    };
    // These loaded, then threw an uncoded TypeError / SyntaxError / wrong ids at encode time.
    add('tokenizer.json post_processor of the wrong shape', tj((j) => (j.post_processor = { type: 'TemplateProcessing', single: 5, pair: null, special_tokens: 5 })), 'tokenizer:E_BAD_TOKENIZER', true);
    add('tokenizer.json added token too long for a RegExp', tj((j) => (j.added_tokens = [{ content: 'x'.repeat(100_000), id: 100, special: true, normalized: false }])), 'tokenizer:E_BAD_TOKENIZER', true);
    add('tokenizer.json vocab id a string', tj((j) => (j.model.vocab['[CLS]'] = '101')), 'tokenizer:E_BAD_TOKENIZER', true);
    add('tokenizer.json vocab id a fraction', tj((j) => (j.model.vocab.hello = 1.5)), 'tokenizer:E_BAD_TOKENIZER', true);
    add('tokenizer.json added_tokens entry null', tj((j) => (j.added_tokens = [null])), 'tokenizer:E_BAD_TOKENIZER', true);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Running a case

interface Outcome {
  ok: boolean;
  /** step:code for every step that threw (code "-" when the Error had none). */
  errors: string[];
  /** A throw that was not an Error with a message. */
  badThrows: string[];
  loaded: boolean;
  messages: string[];
}

function record(o: Outcome, step: string, e: unknown): void {
  if (e instanceof Error && typeof e.message === 'string' && e.message.length > 0) {
    const code = (e as { code?: unknown }).code;
    o.errors.push(`${step}:${typeof code === 'string' ? code : `-(${e.name})`}`);
    o.messages.push(`${step}: ${e.message.split('\n')[0].slice(0, 300)}`);
  } else {
    o.badThrows.push(`${step}: ${String(e).slice(0, 200)}`);
  }
}

const TEXT = 'Hello, world! This is a fuzz test: Ünïcödé, 中文, emoji 😀, [CLS] [MASK] tokens.';
let goodModel: BertModel | undefined;

async function runCase(spec: CaseSpec, root: string): Promise<Outcome> {
  const o: Outcome = { ok: true, errors: [], badThrows: [], loaded: false, messages: [] };
  const dir = join(root, `case-${spec.index}`.replace(/[^\w.-]/g, '_'));
  mkdirSync(dir, { recursive: true });
  try {
    for (const [name, content] of Object.entries(spec.files)) writeFileSync(join(dir, name), content);
    if (spec.model) {
      if (spec.files['model.safetensors'] !== undefined) {
        try {
          await readSafetensors(join(dir, 'model.safetensors'));
        } catch (e) {
          record(o, 'read', e);
        }
      }
      let model: BertModel | undefined;
      try {
        model = await BertModel.fromPretrained(dir);
        o.loaded = true;
      } catch (e) {
        record(o, 'load', e);
      }
      if (model) {
        try {
          const v = Number(model.config.vocab_size);
          const ids = Int32Array.of(101, 2023, 102).map((x) => Math.max(0, Math.min(x, v - 1)));
          await model.forward({ inputIds: ids, batchSize: 1, seqLen: 3 });
        } catch (e) {
          record(o, 'forward', e);
        } finally {
          model.dispose();
        }
      }
    }
    if (spec.tokenizer) {
      let tok: ReturnType<typeof loadTokenizer> | undefined;
      try {
        tok = loadTokenizer(dir);
        o.loaded = true;
      } catch (e) {
        record(o, 'tokenizer', e);
      }
      if (tok) {
        let ids: number[] = [];
        try {
          ids = tok.encode(TEXT, 'a second segment').inputIds;
          tok.tokenizeWithOffsets(TEXT);
          tok.encodeQuestionContext('what is this?', TEXT, { maxLength: 24, docStride: 4 });
          tok.encodeBatch([TEXT, 'short'], { maxLength: 16 });
        } catch (e) {
          record(o, 'encode', e);
        }
        // The tokenizer's ids as they come into a good model (bert-base ids are mostly beyond the tiny
        // model's 1024: a RangeError, never a read out of bounds).
        if (goodModel && ids.length > 0) {
          try {
            await goodModel.forward({ inputIds: Int32Array.from(ids), batchSize: 1, seqLen: ids.length });
          } catch (e) {
            record(o, 'ids-forward', e);
          }
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  o.ok = o.errors.length === 0 && o.badThrows.length === 0;
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Main

function emit(line: string): void {
  writeSync(1, line + '\n');
}

function envInt(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${v}`);
  return Math.floor(n);
}

interface TargetStats {
  cases: number;
  loaded: number;
  codes: Record<string, number>;
}

async function main(): Promise<void> {
  const seed = envInt('BLOCKPRUNE_FUZZ_SEED', 20240611);
  const seconds = Number(process.env.BLOCKPRUNE_FUZZ_SECONDS ?? 40);
  const maxCases = envInt('BLOCKPRUNE_FUZZ_MAX_CASES', 20000);
  const start = envInt('BLOCKPRUNE_FUZZ_START', 0);
  const only = process.env.BLOCKPRUNE_FUZZ_CASE;
  const regressions = process.env.BLOCKPRUNE_FUZZ_REGRESSIONS === '1';
  const rssLimit = envInt('BLOCKPRUNE_FUZZ_RSS_MB', 4096) * 1024 * 1024;
  const verbose = only !== undefined || process.env.BLOCKPRUNE_FUZZ_VERBOSE === '1';
  const t0 = Date.now();
  const deadline = t0 + seconds * 1000;

  setNumThreads(1);
  const bases = loadBases();
  if (bases.models.length === 0) throw new Error('no fixtures found (../shared/fixtures/bert-tiny-cls)');
  const cls = FIXTURES ? join(FIXTURES, 'bert-tiny-cls') : '';
  if (existsSync(cls)) goodModel = await BertModel.fromPretrained(cls);

  let current = 'setup';
  const guard = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > rssLimit) {
      emit(`RSS ${Math.round(rss / 1048576)} ${current}`);
      process.kill(process.pid, 'SIGKILL');
    }
  }, 20);
  guard.unref();

  const tmp = tempDir('blockprune-fuzz-');
  const stats: Record<string, TargetStats> = {};
  const badThrows: string[] = [];
  const regressionResults: Array<{ name: string; expect: string; got: string[]; messages: string[] }> = [];
  let cases = 0;
  try {
    const run = async (spec: CaseSpec): Promise<Outcome> => {
      current = String(spec.index);
      emit(`CASE ${spec.index} ${spec.target} ${spec.base} ${spec.desc.join('; ').replace(/\s+/g, ' ')}`);
      const c0 = Date.now();
      const o = await runCase(spec, tmp.path);
      emit(`END ${spec.index} ${o.ok ? 'ok' : 'err'} ${o.errors.join(',') || '-'} ${Date.now() - c0}`);
      if (verbose) for (const m of o.messages) emit(`  ${m}`);
      const s = (stats[spec.target] ??= { cases: 0, loaded: 0, codes: {} });
      s.cases++;
      if (o.loaded) s.loaded++;
      for (const e of o.errors) s.codes[e] = (s.codes[e] ?? 0) + 1;
      for (const b of o.badThrows) badThrows.push(`case ${spec.index}: ${b}`);
      cases++;
      return o;
    };
    if (regressions) {
      for (const { spec, expect } of regressionCases(bases)) {
        if (only !== undefined && spec.index !== `R${only}`) continue;
        const o = await run(spec);
        regressionResults.push({ name: spec.desc[0], expect, got: o.errors, messages: o.messages });
      }
    } else if (only !== undefined) {
      await run(makeCase(seed, Number(only), bases));
    } else {
      for (let i = start; i < maxCases && Date.now() < deadline; i++) await run(makeCase(seed, i, bases));
    }
    // The process is still sane: the good fixture loads and runs.
    if (goodModel) {
      const out = await goodModel.forward({ inputIds: Int32Array.of(101, 200, 102), batchSize: 1, seqLen: 3 });
      if (!Number.isFinite((out.logits.data as Float32Array)[0])) throw new Error('the good model gives non-finite logits after the fuzz run');
      goodModel.dispose();
    }
  } finally {
    tmp.cleanup();
  }
  emit(
    'SUMMARY ' +
      JSON.stringify({ seed, start, cases, seconds: (Date.now() - t0) / 1000, stats, badThrows, regressions: regressionResults, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }),
  );
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e) => {
      emit(`FATAL ${e instanceof Error ? e.stack ?? e.message : String(e)}`.replace(/\n/g, ' | '));
      process.exit(2);
    },
  );
}
