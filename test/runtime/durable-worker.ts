/**
 * The child process of test/durable-writes.test.ts (not a test file itself). Commands:
 *
 *   full <dir> <tmpfs|preload>   every full-disk case, each on a directory of `dir` whose free space is set
 *                                first: by a filler file on a small tmpfs mounted at `dir`, or, with the
 *                                LD_PRELOAD shim, by a byte budget after which writes under `dir` fail with
 *                                ENOSPC (BP_ENOSPC_PREFIX / BP_ENOSPC_BUDGET). Prints `CASE <json>` per case.
 *   save-loop <dir> <refs>       saves models A and B into `dir` in turn, forever (after writing each once
 *                                into <refs>/a and <refs>/b and printing READY): the parent SIGKILLs it.
 *   checkpoint-loop <out>        trains with a checkpoint after every step, forever (READY after the first).
 *
 * A case reports what happened (`outcome`, `code`), what was checked (`checks`: each must be true) and
 * `silentLoss`: success reported for a broken result, or the previous data damaged.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, statfsSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { appendDurableSync, copyFileAtomicSync, writeFileAtomicSync } from '../../lib/runtime/atomic';
import { BertConfigJson, BertModel, ForwardBatch } from '../../lib/model/model';
import { exportOnnx } from '../../lib/model/onnx';
import { writeMaskImages } from '../../lib/report/mask-plots';
import { latestCheckpoint, readCheckpointState, SparseTrainer, TrainData } from '../../lib/training/trainer';
import { writeVocab } from '../../lib/tokenizer/vocab';

export const CONFIG: BertConfigJson = {
  vocab_size: 2000,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 128,
  max_position_embeddings: 64,
};
/** Model B differs from A in its weights (seed) and in its config (label names): a mix of the two shows. */
export const CONFIG_B: BertConfigJson = { ...CONFIG, id2label: { '0': 'no', '1': 'yes' }, label2id: { no: 0, yes: 1 } };

function out(line: string): void {
  writeSync(1, line + '\n');
}

/** sha256 of a saved model's weights file and config: which save a directory holds. */
export function fingerprint(dir: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(join(dir, 'model.safetensors'))).update(readFileSync(join(dir, 'config.json'))).digest('hex');
  } catch {
    return undefined;
  }
}

/** sha256 of a loaded model's tensors: the weights a directory really gives. */
function stateHash(model: BertModel): string {
  const h = createHash('sha256');
  const sd = model.stateDict();
  for (const k of Object.keys(sd).sort()) {
    const d = sd[k].data;
    h.update(k).update(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

/** The state hash of the model in `dir`, or undefined when it does not load. */
async function loadedHash(dir: string): Promise<string | undefined> {
  try {
    const m = await BertModel.fromPretrained(dir);
    try {
      return stateHash(m) + ':' + JSON.stringify(m.labels);
    } finally {
      m.dispose();
    }
  } catch {
    return undefined;
  }
}

/** Entries named like a temporary (".tmp-<pid>-...") in each of `dirs`. */
export function temps(...dirs: string[]): string[] {
  return dirs.flatMap((d) => (existsSync(d) ? readdirSync(d).filter((n) => n.startsWith('.tmp-')).map((n) => join(d, n)) : []));
}

class ToyData implements TrainData {
  readonly length = 16;
  *batches(batchSize: number): Iterable<ForwardBatch> {
    for (let b = 0; b < this.length; b += batchSize) {
      const n = Math.min(batchSize, this.length - b);
      const seqLen = 8;
      const inputIds = Int32Array.from({ length: n * seqLen }, (_, i) => 5 + ((i * 7 + b) % 50));
      yield { inputIds, attentionMask: new Int32Array(n * seqLen).fill(1), batchSize: n, seqLen, labels: Int32Array.from({ length: n }, (_, i) => (i + b) % 2) };
    }
  }
}

function trainer(model: BertModel, extra: Partial<ConstructorParameters<typeof SparseTrainer>[0]>): SparseTrainer {
  return new SparseTrainer({ model, train: new ToyData(), batchSize: 4, maxSteps: 1_000_000, handleSigint: false, progress: false, ...extra });
}

// ---------------------------------------------------------------------------------------------------------
// Full disk

/** One full-disk case's outcome (the test reads these from this worker's output). */
export interface CaseResult {
  name: string;
  outcome: 'rejected' | 'resolved';
  code?: string;
  message?: string;
  checks: Record<string, boolean>;
  silentLoss: boolean;
}

async function full(root: string, mode: string): Promise<void> {
  const filler = join(root, 'filler.bin');
  let budgetSerial = 0;
  /** Leaves about `bytes` free for what follows. */
  const setFree = (bytes: number): void => {
    if (mode === 'preload') {
      // The shim restarts its count whenever the budget text changes.
      process.env.BP_ENOSPC_BUDGET = `${Math.max(0, Math.floor(bytes))}:${++budgetSerial}`;
      return;
    }
    const s = statfsSync(root);
    const free = s.bavail * s.bsize;
    const cur = existsSync(filler) ? statSync(filler).size : 0;
    const want = Math.max(0, cur + free - Math.floor(bytes));
    if (want <= cur) {
      if (cur > 0) truncateSync(filler, want);
      return;
    }
    // Real pages (a sparse file would take no space on tmpfs).
    const fd = openSync(filler, 'a');
    try {
      const zeros = Buffer.alloc(1 << 16);
      for (let left = want - cur; left > 0; left -= Math.min(left, zeros.length)) writeSync(fd, zeros, 0, Math.min(left, zeros.length));
    } catch {
      /* full already */
    } finally {
      closeSync(fd);
    }
  };
  const PLENTY = 1 << 30;
  const report = (r: CaseResult) => out('CASE ' + JSON.stringify(r));
  /** Runs `op` and returns how it ended. */
  const attempt = async (op: () => unknown): Promise<{ outcome: 'rejected' | 'resolved'; code?: string; message?: string }> => {
    try {
      await op();
      return { outcome: 'resolved' };
    } catch (e) {
      return { outcome: 'rejected', code: (e as { code?: string }).code, message: (e as Error).message };
    }
  };

  setFree(PLENTY);
  const a = await BertModel.fromConfig(CONFIG, { seed: 1 });
  const b = await BertModel.fromConfig(CONFIG_B, { seed: 2 });
  const hashA = stateHash(a) + ':' + JSON.stringify(a.labels);
  const hashB = stateHash(b) + ':' + JSON.stringify(b.labels);

  // 1. Saving over a good model with too little space, at many sizes: the save either succeeds and gives B,
  //    or fails with E_NO_SPACE and the directory still gives A, loadable, with identical weights.
  const modelDir = join(root, 'model');
  await a.save(modelDir);
  const M = statSync(join(modelDir, 'model.safetensors')).size;
  const sizes = [0, 100, 4096, 65536, M / 4, M / 2, (3 * M) / 4, M - 4096, M - 100, M + 2048, M + 65536, 4 * M];
  for (const free of sizes) {
    setFree(free);
    const r = await attempt(() => b.save(modelDir));
    setFree(PLENTY);
    const got = await loadedHash(modelDir);
    const checks: Record<string, boolean> = { loads: got !== undefined, noTempsLeft: temps(root, modelDir).length === 0 };
    if (r.outcome === 'rejected') {
      checks.codeNoSpace = r.code === 'E_NO_SPACE';
      checks.oldModelIntact = got === hashA;
    } else {
      checks.newModelWhole = got === hashB;
      await a.save(modelDir); // back to A for the next size
    }
    report({ name: `save over a model, ${Math.round(free)} bytes free (model.safetensors ${M})`, ...r, checks, silentLoss: !checks.loads || (r.outcome === 'rejected' ? !checks.oldModelIntact : !checks.newModelWhole) });
  }

  // 2. A model that does not fit into a new directory: rejected, nothing left that looks like a model.
  {
    const dir = join(root, 'new-model');
    setFree(M / 2);
    const r = await attempt(() => b.save(dir));
    setFree(PLENTY);
    const checks = { codeNoSpace: r.code === 'E_NO_SPACE', noDirectory: !existsSync(dir), noTempsLeft: temps(root).length === 0 };
    report({ name: 'save a model that does not fit into a new directory', ...r, checks, silentLoss: r.outcome === 'resolved' ? (await loadedHash(dir)) !== hashB : existsSync(dir) });
  }

  // 3. Checkpoints: the first fits, then the disk is full: training stops with E_NO_SPACE, checkpoint-1 is
  //    complete and is the latest, no partial checkpoint-2.
  {
    const dir = join(root, 'run');
    const model = await BertModel.fromConfig(CONFIG, { seed: 3 });
    let first: string | undefined;
    const r = await attempt(() =>
      trainer(model, {
        outputDir: dir,
        checkpointEvery: 1,
        onLog: (e) => {
          if (e.type === 'checkpoint' && !first) {
            first = String(e.dir);
            setFree(M / 2);
          }
        },
      }).train(),
    );
    setFree(PLENTY);
    model.dispose();
    const cps = existsSync(dir) ? readdirSync(dir).filter((n) => /^checkpoint-/.test(n)) : [];
    let complete = false;
    try {
      readCheckpointState(first!);
      complete = (await loadedHash(first!)) !== undefined;
    } catch {
      complete = false;
    }
    const checks = {
      codeNoSpace: r.code === 'E_NO_SPACE',
      firstComplete: complete,
      onlyTheFirst: cps.length === 1,
      latestIsFirst: latestCheckpoint(dir) === first,
      noTempsLeft: temps(dir).length === 0,
    };
    report({ name: 'trainer checkpoint when the disk fills after the first', ...r, checks, silentLoss: r.outcome === 'resolved' || !complete });
  }

  // 4. ONNX export over an existing file.
  {
    const file = join(root, 'onnx', 'model.onnx');
    await exportOnnx(a, file);
    const before = readFileSync(file);
    for (const free of [1000, before.length / 2]) {
      setFree(free);
      const r = await attempt(() => exportOnnx(b, file));
      setFree(PLENTY);
      const same = readFileSync(file).equals(before);
      const checks = { codeNoSpace: r.code === 'E_NO_SPACE', oldFileIntact: same, noTempsLeft: temps(join(root, 'onnx')).length === 0 };
      report({ name: `exportOnnx over a file, ${Math.round(free)} bytes free (file ${before.length})`, ...r, checks, silentLoss: r.outcome === 'resolved' || !same });
    }
  }

  // 5. Mask PNGs: rejected, and every picture left is whole.
  {
    const dir = join(root, 'masks');
    // Room for about half the pictures (tmpfs counts whole pages).
    const ref = await writeMaskImages(a, join(root, 'masks-ref'));
    const bytes = ref.reduce((n, f) => n + statSync(f).size, 0);
    const free = mode === 'tmpfs' ? 4096 * Math.floor(ref.length / 2) : bytes / 2;
    setFree(free);
    const r = await attempt(() => writeMaskImages(a, dir));
    setFree(PLENTY);
    const pngs = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.png')) : [];
    const whole = pngs.every((n) => readFileSync(join(dir, n)).subarray(-8, -4).toString('latin1') === 'IEND');
    const checks = { codeNoSpace: r.code === 'E_NO_SPACE', picturesWhole: whole, noTempsLeft: temps(dir).length === 0 };
    report({ name: `mask PNGs with ${free} bytes free (${pngs.length} of ${ref.length} pictures written, whole, before)`, ...r, checks, silentLoss: r.outcome === 'resolved' || !whole });
  }

  // 6. Small files replaced in place: vocab.txt, report.json (the job's writer), a tokenizer copy.
  {
    const dir = join(root, 'files');
    const words = Array.from({ length: 3000 }, (_, i) => `word${i}`);
    writeVocab(dir, words.slice(0, 10));
    writeFileAtomicSync(join(dir, 'report.json'), JSON.stringify({ old: true }));
    writeFileAtomicSync(join(dir, 'source.json'), JSON.stringify({ big: words }));
    copyFileAtomicSync(join(dir, 'source.json'), join(dir, 'tokenizer.json'));
    writeFileAtomicSync(join(dir, 'tokenizer.json'), JSON.stringify({ old: true }));
    const ops: Array<[string, string, () => unknown]> = [
      ['writeVocab over vocab.txt', 'vocab.txt', () => writeVocab(dir, words)],
      ['report.json over report.json (writeFileAtomicSync, as the job writes it)', 'report.json', () => writeFileAtomicSync(join(dir, 'report.json'), JSON.stringify({ words }))],
      ['tokenizer copy over tokenizer.json (copyFileAtomicSync)', 'tokenizer.json', () => copyFileAtomicSync(join(dir, 'source.json'), join(dir, 'tokenizer.json'))],
    ];
    for (const [name, file, op] of ops) {
      const before = readFileSync(join(dir, file));
      setFree(1000);
      const r = await attempt(op);
      setFree(PLENTY);
      const same = readFileSync(join(dir, file)).equals(before);
      const checks = { codeNoSpace: r.code === 'E_NO_SPACE', oldFileIntact: same, noTempsLeft: temps(dir).length === 0 };
      report({ name: `${name}, 1000 bytes free`, ...r, checks, silentLoss: r.outcome === 'resolved' || !same });
    }
  }

  // 7. JSON-lines appends: a failed append is thrown and cut off; the next one after space returns is whole.
  {
    const log = join(root, 'logs', 'log.jsonl');
    writeFileAtomicSync(log, '');
    for (let i = 0; i < 3; i++) appendDurableSync(log, JSON.stringify({ i }) + '\n');
    const before = readFileSync(log);
    setFree(10);
    const r = await attempt(() => appendDurableSync(log, JSON.stringify({ long: 'x'.repeat(5000) }) + '\n'));
    setFree(PLENTY);
    const same = readFileSync(log).equals(before);
    appendDurableSync(log, JSON.stringify({ i: 3 }) + '\n');
    const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
    const valid = lines.every((l) => {
      try {
        JSON.parse(l);
        return true;
      } catch {
        return false;
      }
    });
    const checks = { codeNoSpace: r.code === 'E_NO_SPACE', earlierLinesIntact: same, nextAppendWhole: valid && lines.length === 4 };
    report({ name: 'append to a JSON-lines log, 10 bytes free', ...r, checks, silentLoss: r.outcome === 'resolved' || !same || !valid });
  }

  // 8. The trainer's log: the append that fails stops the run with E_NO_SPACE, not swallowed.
  {
    const log = join(root, 'trainlog', 'log.jsonl');
    const model = await BertModel.fromConfig(CONFIG, { seed: 4 });
    let lines = 0;
    const r = await attempt(() =>
      trainer(model, {
        logFile: log,
        logEvery: 1,
        onLog: () => {
          if (++lines === 1) setFree(0);
        },
      }).train(),
    );
    setFree(PLENTY);
    model.dispose();
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const valid = text.endsWith('\n') && text.trimEnd().split('\n').every((l) => l.startsWith('{') && l.endsWith('}'));
    const checks = { codeNoSpace: r.code === 'E_NO_SPACE', logLinesWhole: valid };
    report({ name: 'trainer JSON-lines log on a full disk', ...r, checks, silentLoss: r.outcome === 'resolved' || !valid });
  }
  a.dispose();
  b.dispose();
  out('DONE');
}

// ---------------------------------------------------------------------------------------------------------
// Loops killed by the parent

async function saveLoop(dir: string, refs: string): Promise<void> {
  // Big enough (8 MB of weights) that a save takes a while, so kills land inside saves.
  const big: BertConfigJson = { ...CONFIG, vocab_size: 16000, hidden_size: 128, intermediate_size: 256 };
  const a = await BertModel.fromConfig(big, { seed: 1 });
  const b = await BertModel.fromConfig({ ...big, id2label: CONFIG_B.id2label, label2id: CONFIG_B.label2id }, { seed: 2 });
  if (!existsSync(join(refs, 'b'))) {
    await a.save(join(refs, 'a'));
    await b.save(join(refs, 'b'));
  }
  if (!existsSync(dir)) await a.save(dir);
  out('READY');
  for (let i = 0; ; i++) await (i % 2 ? a : b).save(dir);
}

async function checkpointLoop(outDir: string): Promise<void> {
  const model = await BertModel.fromConfig({ ...CONFIG, vocab_size: 8000 }, { seed: 5 });
  let ready = false;
  await trainer(model, {
    outputDir: outDir,
    // Each new process continues from what the killed one left: the latest complete checkpoint.
    resume: latestCheckpoint(outDir) !== undefined,
    checkpointEvery: 1,
    keepCheckpoints: 2,
    onLog: (e) => {
      if (e.type === 'checkpoint' && !ready) {
        ready = true;
        out('READY');
      }
    },
  }).train();
}

async function main(): Promise<void> {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'full') await full(args[0], args[1]);
  else if (cmd === 'save-loop') await saveLoop(args[0], args[1]);
  else if (cmd === 'checkpoint-loop') await checkpointLoop(args[0]);
  else throw new Error(`unknown command ${cmd}`);
}

if (require.main === module) {
  main().catch((e) => {
    out(`ERROR ${(e as { code?: string }).code ?? ''} ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
}
