/**
 * What users look at after pruning: parameter counts (before/after, vs BERT-base), the per-layer shape
 * table nn_pruning users know ("[3072, 768] => [552, 768], intermediate.dense.weight"), densities, and mask
 * pictures (PNG) of `weight != 0`.
 */
import { join } from 'node:path';
import { ensureDir, writeFileAtomicSync } from '../runtime/atomic';
import { BertModel } from '../model/model';
import type { ModelStructure } from '../model/model';
import '../pruning/model-pruning'; // model.masks()
import { Canvas, encodePng } from './png';
import * as v from '../runtime/validate';

/** The figure nn_pruning reports reductions against. */
export const BERT_BASE_PARAMETERS = 110e6;

/** The six linears of a layer, by role (their names are the family's: model.structure.linears). */
const ROLES = ['query', 'key', 'value', 'attentionOutput', 'intermediate', 'output'] as const;
type Role = (typeof ROLES)[number];
const ATTENTION_ROLES: readonly Role[] = ['query', 'key', 'value', 'attentionOutput'];

export interface ParameterSummary {
  total: number;
  embeddings: number;
  encoder: number;
  /** Pooler and task head. */
  head: number;
  /** Weights and biases of the encoder's linear layers. */
  linear: number;
  headsKept: number;
  headsTotal: number;
  /** The same architecture with every head and FFN unit. */
  denseTotal: number;
  denseLinear: number;
  /** denseTotal / total. */
  reductionVsDense: number;
  /** 110M / total, the figure nn_pruning prints. */
  reductionVsBertBase: number;
}

export interface ShapeRow {
  layer: number;
  /** Name inside the layer, e.g. "intermediate.dense.weight". */
  name: string;
  dense: number[];
  now: number[];
}

export interface LayerSummary {
  layer: number;
  heads: number;
  keptHeads: number[];
  ffn: number;
  /** Fraction of non-zero weights in the layer's six linears (masks when patched), if computed. */
  density?: number;
}

export interface ModelReport {
  task: string;
  parameters: ParameterSummary;
  layers: LayerSummary[];
  shapes: ShapeRow[];
  /** Non-zero fraction of every encoder linear (when masks were computed). */
  density?: Record<string, number>;
}

/** The dense (unpruned) shapes of a layer's linears, by name inside the layer; other tensors keep theirs. */
function denseShapes(model: BertModel): Record<string, number[]> {
  const d = model.dimensions;
  const L = model.structure.linears;
  const H = d.hiddenSize;
  const A = d.numHeads * d.headDim; // all heads x head size
  const F = d.intermediateSize;
  const out: Record<string, number[]> = {};
  for (const r of ['query', 'key', 'value'] as const) Object.assign(out, { [`${L[r]}.weight`]: [A, H], [`${L[r]}.bias`]: [A] });
  Object.assign(out, { [`${L.attentionOutput}.weight`]: [H, A], [`${L.intermediate}.weight`]: [F, H], [`${L.intermediate}.bias`]: [F], [`${L.output}.weight`]: [H, F] });
  return out;
}

/**
 * [layer, name inside the layer] of an encoder parameter (a state-dict key: "bert.encoder.layer.3.x", or
 * "encoder.layer.3.x" in a bare model, whose keys have no prefix), or undefined.
 */
function layerParameter(s: Pick<ModelStructure, 'layers'>, name: string): [number, string] | undefined {
  for (const prefix of [`${s.layers}.`, `${s.layers.slice(s.layers.indexOf('.') + 1)}.`]) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const dot = rest.indexOf('.');
    return [Number(rest.slice(0, dot)), rest.slice(dot + 1)];
  }
  return undefined;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

export function parameterSummary(model: BertModel): ParameterSummary {
  const d = model.dimensions;
  const structure = model.structure;
  const linears = ROLES.map((r) => structure.linears[r] + '.');
  const dense = denseShapes(model);
  let embeddings = 0;
  let encoder = 0;
  let head = 0;
  let linear = 0;
  let denseEncoder = 0;
  let denseLinear = 0;
  for (const [name, shape] of model.parameterShapes) {
    if (name.includes('mask_scores')) continue;
    const n = numel(shape);
    const inLayer = layerParameter(structure, name);
    if (name.includes('embeddings.')) embeddings += n;
    else if (inLayer) {
      // A compact model's layer has fewer heads and units than the dense one: dense sizes come from the config.
      const denseN = numel(dense[inLayer[1]] ?? shape);
      encoder += n;
      denseEncoder += denseN;
      if (linears.some((l) => inLayer[1].startsWith(l))) {
        linear += n;
        denseLinear += denseN;
      }
    } else head += n;
  }
  const total = embeddings + encoder + head;
  const denseTotal = embeddings + denseEncoder + head;
  const layers = model.layers;
  return {
    total,
    embeddings,
    encoder,
    head,
    linear,
    headsKept: layers.reduce((a, l) => a + l.heads, 0),
    headsTotal: d.numHeads * d.numLayers,
    denseTotal,
    denseLinear,
    reductionVsDense: denseTotal / total,
    reductionVsBertBase: BERT_BASE_PARAMETERS / total,
  };
}

/** Per-layer parameter shapes: dense (from the config) => now. */
export function shapeTable(model: BertModel): ShapeRow[] {
  const dense = denseShapes(model);
  const rows: ShapeRow[] = [];
  for (const [name, shape] of model.parameterShapes) {
    const inLayer = layerParameter(model.structure, name);
    if (!inLayer || name.includes('mask_scores')) continue;
    const [layer, inner] = inLayer;
    rows.push({ layer, name: inner, dense: dense[inner] ?? shape, now: shape });
  }
  return rows;
}

/** Summary, layers and shapes; with `masks: true` also the density of every encoder linear. */
export async function buildReport(model: BertModel, options: { masks?: boolean } = {}): Promise<ModelReport> {
  v.options('options', options, ['masks']);
  if (options.masks !== undefined) v.boolean('options.masks', options.masks);
  const report: ModelReport = {
    task: model.task,
    parameters: parameterSummary(model),
    layers: model.layers.map((l, i) => ({ layer: i, heads: l.heads, keptHeads: l.keptHeads, ffn: l.intermediateSize })),
    shapes: shapeTable(model),
  };
  if (options.masks) {
    const masks = await model.masks();
    report.density = {};
    const perLayer = new Map<number, [number, number]>();
    for (const [key, t] of Object.entries(masks)) {
      if (!key.startsWith('mask.')) continue;
      const d = t.data as Uint8Array;
      let nz = 0;
      for (let i = 0; i < d.length; i++) nz += d[i] ? 1 : 0;
      const name = key.slice(5);
      report.density[name] = d.length ? nz / d.length : 0;
      const layer = Number(/layer\.(\d+)\./.exec(name)?.[1]);
      const acc = perLayer.get(layer) ?? [0, 0];
      perLayer.set(layer, [acc[0] + nz, acc[1] + d.length]);
    }
    for (const l of report.layers) {
      const acc = perLayer.get(l.layer);
      if (acc) l.density = acc[1] ? acc[0] / acc[1] : 0;
    }
  }
  return report;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const shapeStr = (s: number[]) => `[${s.join(', ')}]`;

/** The text report: parameters, per-layer heads/FFN/density, and the shape table. */
export function formatReport(r: ModelReport): string {
  const p = r.parameters;
  const lines = [
    `Parameters: ${fmt(p.total)} (${(p.total / 1e6).toFixed(1)}M): embeddings ${fmt(p.embeddings)}, encoder ${fmt(p.encoder)}, head ${fmt(p.head)}`,
    `  encoder linear layers: ${fmt(p.linear)} of ${fmt(p.denseLinear)} dense (${((100 * p.linear) / p.denseLinear).toFixed(1)}%)`,
    `  heads kept: ${p.headsKept} of ${p.headsTotal}`,
    `  reduction vs the dense model (${(p.denseTotal / 1e6).toFixed(1)}M): ${p.reductionVsDense.toFixed(2)}X; vs BERT-base (110.0M): ${p.reductionVsBertBase.toFixed(2)}X`,
    '',
    'Layer  heads  kept heads                          FFN' + (r.density ? '   density' : ''),
  ];
  for (const l of r.layers)
    lines.push(
      `${String(l.layer).padStart(5)}  ${String(l.heads).padStart(5)}  ${`[${l.keptHeads.join(',')}]`.padEnd(34)}  ${String(l.ffn).padStart(5)}` +
        (l.density !== undefined ? `   ${(100 * l.density).toFixed(1).padStart(6)}%` : ''),
    );
  lines.push('', 'Dense size => model size, parameter');
  let last = -1;
  for (const s of r.shapes) {
    if (s.layer !== last) {
      lines.push(`Layer ${s.layer}`);
      last = s.layer;
    }
    lines.push(`${shapeStr(s.dense)} => ${shapeStr(s.now)}, ${s.name}`);
  }
  return lines.join('\n');
}

/** Averages a 0/1 matrix [rows, cols] into at most maxSide x maxSide cells (density per cell). */
function downsample(mask: Uint8Array, rows: number, cols: number, maxSide: number): { data: Float32Array; rows: number; cols: number } {
  const fr = Math.max(1, Math.ceil(rows / maxSide));
  const fc = Math.max(1, Math.ceil(cols / maxSide));
  const R = Math.ceil(rows / fr);
  const C = Math.ceil(cols / fc);
  const sum = new Float32Array(R * C);
  const cnt = new Float32Array(R * C);
  for (let r = 0; r < rows; r++) {
    const rr = Math.floor(r / fr);
    for (let c = 0; c < cols; c++) {
      const i = rr * C + Math.floor(c / fc);
      sum[i] += mask[r * cols + c] ? 1 : 0;
      cnt[i] += 1;
    }
  }
  for (let i = 0; i < sum.length; i++) sum[i] /= cnt[i] || 1;
  return { data: sum, rows: R, cols: C };
}

/**
 * Writes the mask pictures into `dir`:
 * - `layer<N>.<linear>.png`: `weight != 0` (masks when patched) of each encoder linear, kept = dark,
 *   one pixel per weight up to 1024 per side (larger matrices are averaged: gray = partly kept);
 * - `masks.png`: every layer (rows) x the six linears (columns), each squeezed into a square;
 * - `density.png`: per layer, the heads (blue = alive in q, k and v; gray = masked out; lightest = already
 *   removed) and bars of the attention (orange) and FFN (green) density.
 * Each file is written atomically and durably (lib/atomic.ts). Returns the files written.
 */
export async function writeMaskImages(model: BertModel, dir: string): Promise<string[]> {
  v.writableDirectory('dir', dir);
  ensureDir(dir);
  const masks = await model.masks();
  const d = model.dimensions;
  const structure = model.structure;
  const files: string[] = [];
  const L = d.numLayers;
  const panel = 96;
  const gap = 6;
  const grid = new Canvas(ROLES.length * (panel + gap) + gap, L * (panel + gap) + gap, [255, 255, 255]);
  const layerDensity: Array<{ attn: number; ffn: number }> = [];
  for (let i = 0; i < L; i++) {
    let attnNz = 0;
    let attnN = 0;
    let ffnNz = 0;
    let ffnN = 0;
    ROLES.forEach((role, j) => {
      const lin = structure.linears[role];
      const t = masks[`mask.${structure.layers}.${i}.${lin}`];
      if (!t) return;
      const [rows, cols] = t.shape;
      const d = t.data as Uint8Array;
      let nz = 0;
      for (let k = 0; k < d.length; k++) nz += d[k] ? 1 : 0;
      if (ATTENTION_ROLES.includes(role)) {
        attnNz += nz;
        attnN += d.length;
      } else {
        ffnNz += nz;
        ffnN += d.length;
      }
      if (rows === 0 || cols === 0) return;
      const big = downsample(d, rows, cols, 1024);
      const img = new Canvas(big.cols, big.rows);
      img.drawDensity(0, 0, big.cols, big.rows, big.data, big.cols, big.rows);
      const file = join(dir, `layer${i}.${lin}.png`);
      writeFileAtomicSync(file, img.toPng());
      files.push(file);
      const small = downsample(d, rows, cols, panel);
      grid.drawDensity(gap + j * (panel + gap), gap + i * (panel + gap), panel, panel, small.data, small.cols, small.rows);
    });
    layerDensity.push({ attn: attnN ? attnNz / attnN : 0, ffn: ffnN ? ffnNz / ffnN : 0 });
  }
  const gridFile = join(dir, 'masks.png');
  writeFileAtomicSync(gridFile, grid.toPng());
  files.push(gridFile);

  // density.png: [heads cells][gap][attention bar][gap][FFN bar] per layer.
  const cell = 14;
  const barW = 200;
  const H = d.numHeads;
  const width = gap + H * (cell + 2) + gap * 2 + barW + gap * 2 + barW + gap;
  const rowH = cell + 6;
  const dens = new Canvas(width, gap + L * rowH + gap, [255, 255, 255]);
  const layers = model.layers;
  const hd = d.headDim;
  for (let i = 0; i < L; i++) {
    const y = gap + i * rowH;
    // A head is alive if its rows are non-zero in q, k and v (the compaction rule); heads a previous
    // compaction removed are drawn lightest.
    const kept = layers[i].keptHeads;
    const rowsAlive = (role: 'query' | 'key' | 'value', k: number): boolean => {
      const t = masks[`mask.${structure.layers}.${i}.${structure.linears[role]}`];
      if (!t) return false;
      const cols = t.shape[1];
      const d = t.data as Uint8Array;
      for (let j = k * hd * cols; j < (k + 1) * hd * cols; j++) if (d[j]) return true;
      return false;
    };
    for (let h = 0; h < H; h++) {
      const k = kept.indexOf(h);
      const color: [number, number, number] =
        k < 0 ? [240, 240, 240] : rowsAlive('query', k) && rowsAlive('key', k) && rowsAlive('value', k) ? [40, 70, 160] : [200, 200, 200];
      dens.fillRect(gap + h * (cell + 2), y, cell, cell, color);
    }
    const x1 = gap + H * (cell + 2) + gap * 2;
    dens.fillRect(x1, y, barW, cell, [235, 235, 235]);
    dens.fillRect(x1, y, barW * layerDensity[i].attn, cell, [200, 90, 40]);
    const x2 = x1 + barW + gap * 2;
    dens.fillRect(x2, y, barW, cell, [235, 235, 235]);
    dens.fillRect(x2, y, barW * layerDensity[i].ffn, cell, [40, 140, 80]);
  }
  const densFile = join(dir, 'density.png');
  writeFileAtomicSync(densFile, dens.toPng());
  files.push(densFile);
  return files;
}

export { encodePng };
