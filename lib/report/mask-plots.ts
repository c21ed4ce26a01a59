/**
 * Mask pictures: charts of what a pruned model keeps, with axes, titles and legends, drawn by the same
 * vega-lite path as the frontier (plot.ts renderChart). A mask itself is a raster (one pixel per weight up to
 * 1024 per side, averaged beyond: gray = partly kept) placed in the chart as an image mark, so that a
 * 3072 x 768 matrix costs one image, not millions of rectangles.
 *
 * Densities are the report's (report.ts withDensities, DENSITY_DEFINITION): a picture and the report give one
 * figure for one matrix.
 */
import { join } from 'node:path';
import { ensureDir, writeFileAtomicSync } from '../runtime/atomic';
import type { BertModel } from '../model/model';
import type { TensorData } from '../runtime/native';
import * as v from '../runtime/validate';
import '../pruning/model-pruning'; // model.masks()
import { encodePng } from './png';
import { CHART_STYLE, renderChart } from './plot';
import { buildReport, ModelReport, ROLES, withDensities } from './report';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** The gray ramp of a kept fraction (0 = pruned, light; 1 = kept, dark): the rasters and the legends use it. */
const PRUNED_GRAY = 245;
const KEPT_GRAY = 30;
const gray = (v: number) => `rgb(${v}, ${v}, ${v})`;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A mask as a gray PNG: the kept fraction of each cell (at most maxSide cells per side), kept dark. */
export interface MaskRaster {
  /** PNG bytes (8-bit gray). */
  png: Buffer;
  /** Its cells; each covers ceil(rows / cellRows) x ceil(cols / cellCols) weights. */
  cellRows: number;
  cellCols: number;
}

/** Averages a [rows, cols] 0/1 mask into at most maxSide x maxSide cells and encodes the kept fractions as gray. */
export function maskRaster(mask: Uint8Array, rows: number, cols: number, maxSide = 1024): MaskRaster {
  const fr = Math.max(1, Math.ceil(rows / maxSide));
  const fc = Math.max(1, Math.ceil(cols / maxSide));
  const R = Math.ceil(rows / fr);
  const C = Math.ceil(cols / fc);
  const kept = new Float32Array(R * C);
  const count = new Float32Array(R * C);
  for (let r = 0; r < rows; r++) {
    const row = Math.floor(r / fr) * C;
    for (let c = 0; c < cols; c++) {
      const i = row + Math.floor(c / fc);
      kept[i] += mask[r * cols + c] ? 1 : 0;
      count[i] += 1;
    }
  }
  const pixels = new Uint8Array(R * C);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.round(PRUNED_GRAY - (PRUNED_GRAY - KEPT_GRAY) * (kept[i] / (count[i] || 1)));
  return { png: encodePng(C, R, 1, pixels), cellRows: R, cellCols: C };
}

const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** The kept-fraction legend: a layer that draws nothing but carries the gray ramp's color scale. */
const keptLegend = {
  data: { values: [{ kept: 0 }, { kept: 1 }] },
  mark: { type: 'rect', opacity: 0 },
  encoding: {
    color: {
      field: 'kept',
      type: 'quantitative',
      title: ['kept fraction', '(dark = kept)'],
      scale: { domain: [0, 1], range: [gray(PRUNED_GRAY), gray(KEPT_GRAY)] },
      legend: { format: '.0%', gradientLength: 120 },
    },
  },
};

/** The picture of one matrix: what it says in its title and axes. */
export interface MatrixPicture {
  layer: number;
  /** The linear's path in the layer (the family's: `attention.self.query`, `ffn.lin1`...). */
  linear: string;
  /** Its density (DENSITY_DEFINITION: kept weights over the dense matrix's). */
  density: number;
  /** The matrix's shape now [rows = outputs, cols = inputs]. */
  rows: number;
  cols: number;
  raster: MaskRaster;
}

/** The vega-lite spec of one matrix's mask: outputs down, inputs across, the layer, matrix and density in the title. */
export function matrixSpec(p: MatrixPicture, side = 240): object {
  // The longer side gets `side` CSS pixels, the other its share (at least 40, so that the axis fits).
  const k = side / Math.max(p.rows, p.cols, 1);
  const axis = (field: string, n: number, title: string, reverse = false) => ({
    field,
    type: 'quantitative',
    title,
    scale: { domain: [0, n], nice: false, zero: true, reverse },
    axis: { tickMinStep: 1, format: 'd' },
  });
  return {
    $schema: SCHEMA,
    ...CHART_STYLE,
    title: { text: `layer ${p.layer} · ${p.linear}`, subtitle: `density ${pct(p.density)} · ${p.rows} x ${p.cols}` },
    width: Math.max(40, Math.round(p.cols * k)),
    height: Math.max(40, Math.round(p.rows * k)),
    layer: [
      {
        data: { values: [{ url: dataUrl(p.raster.png), x: 0, x2: p.cols, y: 0, y2: p.rows }] },
        // aria: false keeps the picture's bytes out of the SVG's accessibility label.
        mark: { type: 'image', aspect: false, smooth: false, aria: false },
        encoding: {
          url: { field: 'url' },
          x: axis('x', p.cols, 'input (column)'),
          x2: { field: 'x2' },
          y: axis('y', p.rows, 'output (row)', true),
          y2: { field: 'y2' },
        },
      },
      keptLegend,
    ],
  };
}

/** The grid of every layer's six masks (rows: layers, columns: matrices), each squeezed into a square with its density. */
export function maskGridSpec(panels: readonly MatrixPicture[], linears: readonly string[], density: number, panel = 96): object {
  const values = panels.map((p) => ({ layer: `layer ${p.layer}`, order: p.layer, matrix: p.linear, url: dataUrl(p.raster.png), caption: pct(p.density) }));
  return {
    $schema: SCHEMA,
    ...CHART_STYLE,
    title: { text: 'Kept weights per layer and matrix', subtitle: `encoder density ${pct(density)}; each matrix squeezed into a square, outputs down, inputs across` },
    data: { values },
    facet: {
      row: { field: 'layer', type: 'nominal', sort: { field: 'order' }, title: null, header: { labelAngle: 0, labelAlign: 'right' } },
      // A path per line (attention / self / query): long names would run into their neighbours.
      column: { field: 'matrix', type: 'nominal', sort: [...linears], title: null, header: { labelAngle: 0, labelFontSize: 10, labelExpr: "split(datum.value, '.')" } },
    },
    spacing: { row: 6, column: 8 },
    spec: {
      width: panel,
      height: panel + 14,
      layer: [
        { mark: { type: 'image', aspect: false, smooth: false, aria: false, width: panel, height: panel, align: 'left', baseline: 'top' }, encoding: { url: { field: 'url' }, x: { value: 0 }, y: { value: 0 } } },
        { mark: { type: 'text', align: 'center', baseline: 'bottom', fontSize: 10 }, encoding: { text: { field: 'caption' }, x: { value: panel / 2 }, y: { value: panel + 14 } } },
        keptLegend,
      ],
      // The cells carry pictures, not data on axes: no axes or grid (the text says what a cell is).
      encoding: {},
    },
    config: { ...CHART_STYLE.config, view: { stroke: null } },
    resolve: { scale: { color: 'shared' } },
  };
}

/** A head as the pictures show it. */
export type HeadState = 'alive' | 'masked' | 'removed';
const HEAD_STATES: readonly HeadState[] = ['alive', 'masked', 'removed'];

/** The per-layer chart: each head's state, and the attention and FFN densities as bars. */
export function densitySpec(report: ModelReport, numHeads: number, present: readonly (readonly number[])[]): object {
  const heads = report.layers.flatMap((l, i) =>
    Array.from({ length: numHeads }, (_, h) => ({
      layer: `layer ${l.layer}`,
      order: l.layer,
      head: h,
      state: !present[i].includes(h) ? 'removed' : l.keptHeads.includes(h) ? 'alive' : 'masked',
    })),
  );
  const bars = report.layers.flatMap((l) => [
    { layer: `layer ${l.layer}`, order: l.layer, part: 'attention', density: 100 * (l.attentionDensity ?? 0) },
    { layer: `layer ${l.layer}`, order: l.layer, part: 'FFN', density: 100 * (l.ffnDensity ?? 0) },
  ]);
  const y = { field: 'layer', type: 'nominal', sort: { field: 'order' }, title: null };
  return {
    $schema: SCHEMA,
    ...CHART_STYLE,
    title: { text: 'Heads and density per layer', subtitle: report.weights ? `encoder density ${pct(report.weights.density)} (attention ${pct(report.weights.attention)}, FFN ${pct(report.weights.ffn)})` : '' },
    hconcat: [
      {
        title: { text: 'heads (alive: in the q, k and v masks)', fontSize: 11 },
        data: { values: heads },
        mark: { type: 'rect', stroke: 'white', strokeWidth: 2 },
        width: { step: 16 },
        height: { step: 18 },
        encoding: {
          x: { field: 'head', type: 'ordinal', title: 'head', axis: { labelAngle: 0 } },
          y,
          color: { field: 'state', type: 'nominal', title: 'head', scale: { domain: HEAD_STATES, range: ['#28469f', '#c8c8c8', '#f0f0f0'] } },
        },
      },
      {
        title: { text: 'kept weights (%)', fontSize: 11 },
        data: { values: bars },
        mark: 'bar',
        width: 240,
        height: { step: 18 },
        encoding: {
          x: { field: 'density', type: 'quantitative', title: 'density (%)', scale: { domain: [0, 100] } },
          y,
          yOffset: { field: 'part', sort: ['attention', 'FFN'] },
          color: { field: 'part', type: 'nominal', title: 'linears', scale: { domain: ['attention', 'FFN'], range: ['#c85a28', '#288c50'] } },
        },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
}

/**
 * Writes the mask pictures of a patched model (of `weight != 0` for one that is not) into `dir`, as PNG charts:
 * - `layer<N>.<linear>.png`: one matrix, outputs down and inputs across, layer, matrix, density and shape in the
 *   title, a kept-fraction legend;
 * - `masks.png`: every layer (rows) x the six linears (columns), each squeezed into a square, its density below;
 * - `density.png`: per layer, each head (alive in the q, k and v masks / masked / removed by an earlier
 *   compaction) and bars of the attention and FFN densities.
 * Each file is written atomically and durably (runtime/atomic.ts). Returns the files written. `from`: the model's
 * masks (model.masks()) and its report with them (buildReport with masks), when the caller has read them
 * already (the job reports the same densities), so that they are read once.
 */
export async function writeMaskImages(model: BertModel, dir: string, from?: { masks: Record<string, TensorData>; report: ModelReport }): Promise<string[]> {
  v.writableDirectory('dir', dir);
  const masks: Record<string, TensorData> = from?.masks ?? (await model.masks());
  const report = from?.report ?? withDensities(await buildReport(model), model, masks);
  const structure = model.structure;
  const linears = ROLES.map((r) => structure.linears[r]);
  const pictures: MatrixPicture[] = [];
  const grid: MatrixPicture[] = [];
  const { numLayers, numHeads } = model.dimensions;
  for (let layer = 0; layer < numLayers; layer++) {
    for (const linear of linears) {
      const name = `${structure.layers}.${layer}.${linear}`;
      const t = masks[`mask.${name}`];
      if (!t) continue;
      const [rows, cols] = t.shape;
      if (rows === 0 || cols === 0) continue;
      const d = t.data as Uint8Array;
      const density = report.density?.[name] ?? 0;
      pictures.push({ layer, linear, density, rows, cols, raster: maskRaster(d, rows, cols) });
      grid.push({ layer, linear, density, rows, cols, raster: maskRaster(d, rows, cols, 96) });
    }
  }
  ensureDir(dir);
  const files: string[] = [];
  const write = async (name: string, spec: object) => {
    const file = join(dir, name);
    writeFileAtomicSync(file, (await renderChart(spec)).png);
    files.push(file);
  };
  for (const p of pictures) await write(`layer${p.layer}.${p.linear}.png`, matrixSpec(p));
  await write('masks.png', maskGridSpec(grid, linears, report.weights?.density ?? 0));
  await write('density.png', densitySpec(report, numHeads, model.layers.map((l) => l.keptHeads)));
  return files;
}
