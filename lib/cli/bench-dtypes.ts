/**
 * `bench --dtype fp32,bf16,int8` (issue 16): each model in each number format, ours and onnxruntime's on the
 * same weights, measured in the same alternating rounds as the fp32 figures, and printed as one table per
 * shape with the ratios of this run (ours / onnxruntime, and each dtype's speed-up over its own fp32).
 *
 * Where a cell cannot be measured it says "not available" and why, never a number: ours in int8 and bf16
 * come from model.quantize() (see oursIn), onnxruntime's int8 from exportOnnx's quantize 'int8', and
 * onnxruntime has no bf16 file from us (its CPU provider has no bf16 MatMul; the export writes fp32 or int8).
 */
import type { BertModel } from '../model/model';
import { native } from '../runtime/native';
import { latencyStats } from './latency-stats';

export const DTYPES = ['fp32', 'bf16', 'int8'] as const;
export type BenchDtype = (typeof DTYPES)[number];

/** What the bench calls on an onnxruntime session. */
export interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<unknown>;
}

/** One model in one non-fp32 dtype: what runs it (ours, onnxruntime), or why not, and its times. */
export interface DtypeCell {
  dtype: BenchDtype;
  ours?: BertModel;
  oursNote?: string;
  ort?: OrtSession;
  ortNote?: string;
  oursTimes: number[];
  ortTimes: number[];
}

/**
 * Our model in `dtype` (model.quantize(): weights quantized by native/fast/quant.h's rule, the same integers
 * exportOnnx's quantize 'int8' writes), or why there is none. Without kernels for the format on this CPU the
 * quantized layers run in fp32 (the addon says so once): the note says it, so the row is not read as a
 * quantized speed.
 */
export async function oursIn(model: BertModel, dtype: Exclude<BenchDtype, 'fp32'>): Promise<{ model?: BertModel; note?: string }> {
  const isa = native().buildInfo().quantKernels[dtype];
  try {
    const quantized = await model.quantize({ dtype });
    return { model: quantized, ...(isa === 'none' ? { note: `no ${dtype} kernels for this CPU: its layers run in fp32` } : {}) };
  } catch (e) {
    return { note: `not available: ${(e as Error).message}` };
  }
}

/** The cells of one model for every dtype of `dtypes` but fp32 (fp32 is the bench's own measurement). */
export async function dtypeCells(
  model: BertModel,
  dtypes: readonly BenchDtype[],
  ortInt8: OrtSession | undefined,
  vsOrt: boolean,
): Promise<DtypeCell[]> {
  const cells: DtypeCell[] = [];
  for (const dtype of dtypes) {
    if (dtype === 'fp32') continue;
    const ours = await oursIn(model, dtype);
    const ortNote = !vsOrt
      ? 'not measured (add --vs-onnxruntime)'
      : dtype === 'bf16'
        ? 'not available: no bf16 ONNX file (onnxruntime CPU has no bf16 MatMul)'
        : undefined;
    cells.push({ dtype, ours: ours.model, oursNote: ours.note, ort: dtype === 'int8' ? ortInt8 : undefined, ortNote, oursTimes: [], ortTimes: [] });
  }
  return cells;
}

/** `runs` timed calls of `call`, appended to `into` (ms). */
export async function timeCalls(call: () => Promise<unknown>, runs: number, into: number[]): Promise<void> {
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await call();
    into.push(performance.now() - t0);
  }
}

/** One round of a model's cells (after its fp32 runs in the same round), or their warm-up when `into` is false. */
export async function runCells(cells: DtypeCell[], input: Parameters<BertModel['forward']>[0], feeds: Record<string, unknown>, runs: number, into = true): Promise<void> {
  for (const c of cells) {
    if (c.ours) await timeCalls(() => c.ours!.forward(input), runs, into ? c.oursTimes : []);
    if (c.ort) await timeCalls(() => c.ort!.run(feeds), runs, into ? c.ortTimes : []);
  }
}

const ms = (x: number | undefined): string => (x === undefined ? 'not available' : x.toFixed(2));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`);

/**
 * The table of one shape: per model, fp32 (the bench's own figures: `fp32` ours and onnxruntime means) and
 * each other dtype; returns its rows for --json. Notes (why a cell is empty) are printed once under it.
 */
export function printDtypeTable(
  shape: [number, number],
  models: Array<{ name: string; fp32: { ours: number; ort?: number }; cells: DtypeCell[]; roofline?: Partial<Record<BenchDtype, number>> }>,
): Array<Record<string, unknown>> {
  const [batch, seq] = shape;
  const rows: Array<Record<string, unknown>> = [];
  const notes = new Set<string>();
  // The roofline of a dtype: the model's FLOPs at that dtype's GEMM rate (bench_forward --gemm; source checkouts).
  const withRoofline = models.some((m) => m.roofline && Object.keys(m.roofline).length);
  const lines = [['model', 'dtype', 'ours ms', 'onnxruntime ms', 'ours / ort', 'ours vs fp32', 'ort vs fp32', ...(withRoofline ? ['ours x roofline'] : [])]];
  for (const m of models) {
    const all = [
      { dtype: 'fp32' as BenchDtype, ours: m.fp32.ours, ort: m.fp32.ort, oursNote: undefined, ortNote: m.fp32.ort === undefined ? 'not measured (add --vs-onnxruntime)' : undefined },
      ...m.cells.map((c) => ({
        dtype: c.dtype,
        ours: c.oursTimes.length ? latencyStats(c.oursTimes).mean : undefined,
        ort: c.ortTimes.length ? latencyStats(c.ortTimes).mean : undefined,
        oursNote: c.oursNote,
        ortNote: c.ortNote,
      })),
    ];
    for (const r of all) {
      for (const [who, note] of [['ours', r.oursNote], ['onnxruntime', r.ortNote]]) if (note) notes.add(`${who} ${r.dtype}: ${note}`);
      // Speed-up over fp32 of the same runtime: fp32 ms / this dtype's ms (above 1 is faster).
      const roof = m.roofline?.[r.dtype];
      lines.push([m.name, r.dtype, ms(r.ours), ms(r.ort), ratio(r.ours, r.ort), ratio(m.fp32.ours, r.ours), ratio(m.fp32.ort, r.ort), ...(withRoofline ? [ratio(r.ours, roof)] : [])]);
      rows.push({
        model: m.name,
        batch,
        seq,
        dtype: r.dtype,
        ours_mean_ms: r.ours ?? null,
        ort_mean_ms: r.ort ?? null,
        ours_vs_ort: r.ours !== undefined && r.ort !== undefined ? r.ours / r.ort : null,
        ours_speedup_over_fp32: r.ours !== undefined ? m.fp32.ours / r.ours : null,
        ort_speedup_over_fp32: r.ort !== undefined && m.fp32.ort !== undefined ? m.fp32.ort / r.ort : null,
        roofline_ms: roof ?? null,
        ours_x_roofline: r.ours !== undefined && roof !== undefined ? r.ours / roof : null,
        ...(r.oursNote ? { ours_note: r.oursNote } : {}),
        ...(r.ortNote ? { ort_note: r.ortNote } : {}),
      });
    }
  }
  const widths = lines[0].map((_, j) => Math.max(...lines.map((l) => l[j].length)));
  console.log(
    `  dtypes at ${batch}x${seq} (mean ms over the alternating rounds; "vs fp32" = that runtime's fp32 ms / this ms` +
      (withRoofline ? '; "x roofline" = ours ms / the model\'s FLOPs at that dtype\'s GEMM rate' : '') +
      '):',
  );
  for (const l of lines) console.log(`  ${l.map((c, j) => (j < 2 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ')}`);
  for (const n of notes) console.log(`  (${n})`);
  console.log('');
  return rows;
}
