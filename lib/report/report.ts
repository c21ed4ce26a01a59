/**
 * What users look at after pruning: parameter counts (before/after, vs BERT-base), the per-layer shape
 * table nn_pruning users know ("[3072, 768] => [552, 768], intermediate.dense.weight"), densities, and mask
 * pictures (PNG) of `weight != 0`.
 */
import { BertModel } from '../model/model';
import type { ModelDtype, ModelStructure } from '../model/model';
import type { TensorData } from '../runtime/native';
import '../pruning/model-pruning'; // model.masks()
import * as v from '../runtime/validate';

/**
 * Density, the one definition every figure of it uses (report, info, the job's summary and report.json): the
 * non-zero weights of the encoder's linear layers (the q, k, v, attention-output, intermediate and output weight
 * matrices of every layer; not biases), read from the masks when the model is patched, over the weights of the
 * same matrices in the dense architecture (every head and FFN unit of the config). A patched model and the
 * compact model made from it so give (nearly: compaction also drops what a dead head or unit leaves) one figure.
 */
export const DENSITY_DEFINITION = "non-zero weights of the encoder's linear layers (masks when patched) / their weights in the dense architecture";

/** The figure nn_pruning reports reductions against. */
export const BERT_BASE_PARAMETERS = 110e6;

/** The six linears of a layer, by role (their names are the family's: model.structure.linears). */
export const ROLES = ['query', 'key', 'value', 'attentionOutput', 'intermediate', 'output'] as const;
export type Role = (typeof ROLES)[number];
export const ATTENTION_ROLES: readonly Role[] = ['query', 'key', 'value', 'attentionOutput'];

export interface ParameterSummary {
  total: number;
  embeddings: number;
  encoder: number;
  /** Pooler and task head. */
  head: number;
  /** Weights and biases of the encoder's linear layers (parameters: a patched model's are all there). */
  linear: number;
  /** Heads in the model; buildReport of a patched model: heads alive in the q, k and v masks (compaction's rule). */
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
  /** Heads (of a patched model, with masks: alive in q, k and v), their indices among the config's, FFN units. */
  heads: number;
  keptHeads: number[];
  ffn: number;
  /** The layer's density (DENSITY_DEFINITION, over the layer's six dense linears), when masks were read. */
  density?: number;
  /** The same over the layer's four attention linears (q, k, v, attention output), when masks were read. */
  attentionDensity?: number;
  /** The same over the layer's two FFN linears, when masks were read. */
  ffnDensity?: number;
}

/** DENSITY_DEFINITION's two counts and their ratio. */
export interface DensitySummary {
  nonZero: number;
  /** Weights of the encoder's linear layers in the dense architecture. */
  dense: number;
  /** nonZero / dense. */
  density: number;
  /** The same over the attention linears (q, k, v, attention output) only, and over the FFN's two. */
  attention: number;
  ffn: number;
}

export interface ModelReport {
  task: string;
  /** The model carries masks: heads, FFN units and densities are then what its masks keep (buildReport with masks). */
  patched?: boolean;
  /** The mask threshold in force (patched models). */
  threshold?: number;
  parameters: ParameterSummary;
  /** The encoder linears' number format ('fp32', or 'int8' / 'bf16' once quantized) and the bytes every parameter holds. */
  dtype: ModelDtype;
  weightBytes: number;
  layers: LayerSummary[];
  shapes: ShapeRow[];
  /** The density of every encoder linear (DENSITY_DEFINITION for one matrix), when masks were read. */
  density?: Record<string, number>;
  /** The model's density (DENSITY_DEFINITION), when masks were read. */
  weights?: DensitySummary;
  /** DENSITY_DEFINITION, beside the figures it defines (report.json). */
  densityDefinition?: string;
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
    // Mask scores are training state; an int8 linear's scales belong to its weight.
    if (name.includes('mask_scores') || name.endsWith('.weight_scale')) continue;
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
  // Read once: each getter call builds the model's description anew.
  const structure = model.structure;
  const rows: ShapeRow[] = [];
  for (const [name, shape] of model.parameterShapes) {
    const inLayer = layerParameter(structure, name);
    if (!inLayer || name.includes('mask_scores')) continue;
    const [layer, inner] = inLayer;
    rows.push({ layer, name: inner, dense: dense[inner] ?? shape, now: shape });
  }
  return rows;
}

const countNonZero = (d: Uint8Array) => {
  let nz = 0;
  for (let i = 0; i < d.length; i++) nz += d[i] ? 1 : 0;
  return nz;
};

/** Whether any of rows [from, to) of a [rows, cols] 0/1 matrix is non-zero. */
function anyRows(t: TensorData, from: number, to: number): boolean {
  const cols = t.shape[1];
  const d = t.data as Uint8Array;
  for (let j = from * cols; j < to * cols; j++) if (d[j]) return true;
  return false;
}

/** Whether column c of a [rows, cols] 0/1 matrix is non-zero. */
function anyColumn(t: TensorData, c: number): boolean {
  const [rows, cols] = t.shape;
  const d = t.data as Uint8Array;
  for (let r = 0; r < rows; r++) if (d[r * cols + c]) return true;
  return false;
}

/**
 * What a patched model's masks keep of layer i, by compaction's rules (native/compact.cc): heads alive in q, k
 * and v (their indices among the config's), and FFN units alive in both the intermediate rows and output columns.
 */
function aliveInMasks(
  s: ModelStructure,
  hd: number,
  layer: { keptHeads: number[]; intermediateSize: number },
  masks: Record<string, TensorData>,
  i: number,
): { keptHeads: number[]; ffn: number } {
  const mask = (role: Role) => masks[`mask.${s.layers}.${i}.${s.linears[role]}`];
  const keptHeads = layer.keptHeads.filter((_, k) => (['query', 'key', 'value'] as const).every((r) => mask(r) && anyRows(mask(r), k * hd, (k + 1) * hd)));
  const inter = mask('intermediate');
  const out = mask('output');
  let ffn = 0;
  if (inter && out) for (let u = 0; u < layer.intermediateSize; u++) ffn += anyRows(inter, u, u + 1) && anyColumn(out, u) ? 1 : 0;
  else ffn = layer.intermediateSize;
  return { keptHeads, ffn };
}

/**
 * Summary, layers and shapes; with `masks: true` also the densities (DENSITY_DEFINITION) of the model, of each
 * layer and of each encoder linear, and for a patched model the heads and FFN units its masks keep.
 */
export async function buildReport(model: BertModel, options: { masks?: boolean } = {}): Promise<ModelReport> {
  v.options('options', options, ['masks']);
  if (options.masks !== undefined) v.boolean('options.masks', options.masks);
  const report: ModelReport = {
    task: model.task,
    patched: model.patched,
    ...(model.patched ? { threshold: model.threshold } : {}),
    parameters: parameterSummary(model),
    dtype: model.dtype,
    weightBytes: model.weightBytes,
    layers: model.layers.map((l, i) => ({ layer: i, heads: l.heads, keptHeads: l.keptHeads, ffn: l.intermediateSize })),
    shapes: shapeTable(model),
  };
  return options.masks ? withDensities(report, model, await model.masks()) : report;
}

/**
 * Adds to `report` the densities of `masks` (model.masks() of `model`): per encoder linear, per layer and in
 * all (DENSITY_DEFINITION), and for a patched model the heads and FFN units the masks keep. Returns `report`.
 */
export function withDensities(report: ModelReport, model: BertModel, masks: Record<string, TensorData>): ModelReport {
  const dense = denseShapes(model);
  report.density = {};
  report.densityDefinition = DENSITY_DEFINITION;
  const perLayer = new Map<number, { all: number; attention: number }>();
  let nonZero = 0;
  let attentionNonZero = 0;
  const structure = model.structure;
  const attentionNames = ATTENTION_ROLES.map((r) => `${structure.linears[r]}.weight`);
  for (const [key, t] of Object.entries(masks)) {
    if (!key.startsWith('mask.')) continue;
    const name = key.slice(5);
    const inLayer = layerParameter(structure, `${name}.weight`);
    if (!inLayer) continue;
    const nz = countNonZero(t.data as Uint8Array);
    const denseN = numel(dense[inLayer[1]] ?? t.shape);
    report.density[name] = denseN ? nz / denseN : 0;
    const inAttention = attentionNames.includes(inLayer[1]);
    const layer = perLayer.get(inLayer[0]) ?? { all: 0, attention: 0 };
    layer.all += nz;
    layer.attention += inAttention ? nz : 0;
    perLayer.set(inLayer[0], layer);
    nonZero += nz;
    if (inAttention) attentionNonZero += nz;
  }
  const denseOf = (roles: readonly Role[]) => roles.reduce((a, r) => a + numel(dense[`${structure.linears[r]}.weight`]), 0);
  const denseLayer = denseOf(ROLES);
  const denseLayerAttention = denseOf(ATTENTION_ROLES);
  const denseAttention = denseLayerAttention * report.layers.length;
  const ratio = (a: number, b: number) => (b ? a / b : 0);
  // Read once: each getter describes the whole model natively.
  const layers = report.patched ? model.layers : [];
  const headDim = report.patched ? model.dimensions.headDim : 0;
  for (const l of report.layers) {
    const nz = perLayer.get(l.layer) ?? { all: 0, attention: 0 };
    l.density = ratio(nz.all, denseLayer);
    l.attentionDensity = ratio(nz.attention, denseLayerAttention);
    l.ffnDensity = ratio(nz.all - nz.attention, denseLayer - denseLayerAttention);
    if (report.patched) {
      const alive = aliveInMasks(structure, headDim, layers[l.layer], masks, l.layer);
      Object.assign(l, { heads: alive.keptHeads.length, ...alive });
    }
  }
  const denseAll = denseLayer * report.layers.length;
  report.weights = {
    nonZero,
    dense: denseAll,
    density: ratio(nonZero, denseAll),
    attention: ratio(attentionNonZero, denseAttention),
    ffn: ratio(nonZero - attentionNonZero, denseAll - denseAttention),
  };
  if (report.patched) report.parameters.headsKept = report.layers.reduce((a, l) => a + l.heads, 0);
  return report;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const shapeStr = (s: number[]) => `[${s.join(', ')}]`;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A density's figures: "2.9% = 11,469 / 393,216 (attention 3.5%, FFN 2.5%)". */
export function densityFigures(w: DensitySummary): string {
  return `${pct(w.density)} = ${fmt(w.nonZero)} / ${fmt(w.dense)} (attention ${pct(w.attention)}, FFN ${pct(w.ffn)})`;
}

/** The density line, DENSITY_DEFINITION named where it is printed (report, info). */
export function formatDensity(w: DensitySummary): string {
  return `density ${densityFigures(w)}: ${DENSITY_DEFINITION}`;
}

/** The text report: parameters, per-layer heads/FFN/density, and the shape table. */
export function formatReport(r: ModelReport): string {
  const p = r.parameters;
  const lines = [
    ...(r.patched
      ? [`Patched: masks at threshold ${r.threshold}; heads, FFN units and densities below are what the masks keep, parameters are the tensors' (compact removes the rest)`]
      : []),
    `Parameters: ${fmt(p.total)} (${(p.total / 1e6).toFixed(1)}M): embeddings ${fmt(p.embeddings)}, encoder ${fmt(p.encoder)}, head ${fmt(p.head)}`,
    `  encoder linear layers: ${fmt(p.linear)} parameters (${fmt(p.denseLinear)} with every head and FFN unit)`,
    `  weights: ${r.dtype === 'fp32' ? 'fp32' : `${r.dtype} encoder linears (quantized), the rest fp32`}, ${(r.weightBytes / 1e6).toFixed(2)} MB`,
    ...(r.weights ? [`  ${formatDensity(r.weights)}`] : []),
    `  heads ${r.patched && r.weights ? 'alive in the q, k and v masks' : 'kept'}: ${p.headsKept} of ${p.headsTotal}`,
    `  reduction vs the dense model (${(p.denseTotal / 1e6).toFixed(1)}M): ${p.reductionVsDense.toFixed(2)}X; vs BERT-base (110.0M): ${p.reductionVsBertBase.toFixed(2)}X`,
    '',
    'Layer  heads  kept heads                          FFN' + (r.weights ? '   density' : ''),
  ];
  for (const l of r.layers)
    lines.push(
      `${String(l.layer).padStart(5)}  ${String(l.heads).padStart(5)}  ${`[${l.keptHeads.join(',')}]`.padEnd(34)}  ${String(l.ffn).padStart(5)}` +
        (l.density !== undefined ? `   ${pct(l.density).padStart(7)}` : ''),
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


