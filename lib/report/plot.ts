/**
 * Charts, drawn the way a Node user would (the frontier's accuracy vs speed-up plot here, the mask pictures in
 * mask-plots.ts): a vega-lite spec compiled by `vega-lite`, rendered to SVG by `vega` (pure JavaScript, no canvas),
 * rasterised to PNG by `@resvg/resvg-js` (a prebuilt binary per platform, from the npm registry). Both files
 * are written atomically.
 */
import { pathToFileURL } from 'node:url';
import { writeFileAtomicSync } from '../runtime/atomic';
import * as v from '../runtime/validate';

/** One model on the frontier: the dense model, or the compact model fine-pruned at one lambda. */
export interface FrontierPoint {
  /** What the legend and the point's label call it: 'dense', or 'λ 5' for a pruned model. */
  label: string;
  /** The regularization lambda it was fine-pruned with (none for the dense model). */
  lambda?: number;
  /** Accuracy on the evaluation set, in percent. */
  accuracy: number;
  /** Latency of the dense model over this model's (1 for the dense model itself). */
  speedup: number;
  /** 'int8': the pruned compact model quantized (model.quantize()), plotted as its own kind. Default fp32. */
  dtype?: 'int8';
}

export interface PlotOptions {
  /** The plot's title (default: "Accuracy vs speed-up"). */
  title?: string;
  /** The x axis's title (default: "speed-up over the dense model (x)"). */
  xTitle?: string;
  /** Width and height of the plotting area in CSS pixels (default 480 x 320); the PNG is drawn at `scale`. */
  width?: number;
  height?: number;
  /** Pixels per CSS pixel in the PNG (default 2: sharp on a high-density screen and in a README). */
  scale?: number;
}

export interface PlotFiles {
  svg: string;
  png: string;
  /** The PNG's size in pixels. */
  width: number;
  height: number;
}

/**
 * What every chart shares: a white background (the PNG is read on dark pages too) and fonts most systems have
 * before the generic name (resvg draws 'sans-serif' in its own default, a serif face where Arial is missing).
 */
export const CHART_STYLE = { background: 'white', config: { font: 'Helvetica, Arial, DejaVu Sans, Liberation Sans, sans-serif' } } as const;

/** The legend's two kinds of point. */
export const DENSE_KIND = 'dense model';
export const PRUNED_KIND = 'fine-pruned (compact)';
export const INT8_KIND = 'fine-pruned (compact, int8)';

// vega and vega-lite 6 are ES modules with top-level await, which require() cannot load: they are imported
// at run time. TypeScript compiles `import()` to require() under "module": "commonjs", so the import is
// built where it cannot see it; such an import resolves a bare name from the working directory, so the
// file is found from here first (require.resolve: the packages' exports hold a "default" entry).
const dynamicImport = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;
const importModule = (name: string) => dynamicImport(pathToFileURL(require.resolve(name)).href);

/** The few parts of vega, vega-lite and resvg used here. */
interface VegaLite {
  compile(spec: object): { spec: object };
}
interface Vega {
  parse(spec: object): unknown;
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
}
interface Resvg {
  Resvg: new (svg: string, options: object) => { render(): { asPng(): Buffer; width: number; height: number } };
}

/** The vega-lite spec of a frontier: the pruned models joined by a line in speed-up order, every point labelled. */
export function frontierSpec(points: readonly FrontierPoint[], o: PlotOptions = {}): object {
  const values = points.map((p) => ({ ...p, kind: p.dtype === 'int8' ? INT8_KIND : p.lambda === undefined ? DENSE_KIND : PRUNED_KIND }));
  // The legend lists the kinds there are (no int8 entry for a frontier without int8 points).
  const kinds = [DENSE_KIND, PRUNED_KIND, INT8_KIND].filter((k) => values.some((x) => x.kind === k));
  const colors: Record<string, string> = { [DENSE_KIND]: '#d62728', [PRUNED_KIND]: '#1f77b4', [INT8_KIND]: '#2ca02c' };
  const shapes: Record<string, string> = { [DENSE_KIND]: 'diamond', [PRUNED_KIND]: 'circle', [INT8_KIND]: 'square' };
  const x = { field: 'speedup', type: 'quantitative', title: o.xTitle ?? 'speed-up over the dense model (x)', axis: { format: '.2~f' }, scale: { zero: false, nice: true } };
  const y = { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', axis: { format: '.2~f' }, scale: { zero: false, nice: true } };
  const kind = { field: 'kind', type: 'nominal', title: 'model', legend: { labelLimit: 0 }, scale: { domain: kinds, range: kinds.map((k) => colors[k]) } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title ?? 'Accuracy vs speed-up',
    width: o.width ?? 480,
    height: o.height ?? 320,
    ...CHART_STYLE,
    data: { values },
    encoding: { x, y },
    layer: [
      // Each kind of pruned model joined in speed-up order.
      { transform: [{ filter: `datum.kind !== '${DENSE_KIND}'` }], mark: { type: 'line', opacity: 0.5 }, encoding: { color: kind, detail: { field: 'kind' }, order: { field: 'speedup' } } },
      { mark: { type: 'point', filled: true, size: 90 }, encoding: { color: kind, shape: { ...kind, scale: { domain: kinds, range: kinds.map((k) => shapes[k]) } } } },
      // Labels above their points, int8 ones below theirs: an int8 point often sits next to its fp32 twin.
      { transform: [{ filter: `datum.kind !== '${INT8_KIND}'` }], mark: { type: 'text', align: 'left', dx: 8, dy: -8, fontSize: 11 }, encoding: { text: { field: 'label' } } },
      { transform: [{ filter: `datum.kind === '${INT8_KIND}'` }], mark: { type: 'text', align: 'left', dx: 8, dy: 14, fontSize: 11 }, encoding: { text: { field: 'label' } } },
    ],
  };
}

/** Each point checked: a label, a finite accuracy, a positive speed-up. */
function checkPoints(points: unknown): FrontierPoint[] {
  if (!Array.isArray(points) || points.length === 0) throw v.invalidParameterError('points', 'a non-empty array of frontier points', points, 'type');
  return points.map((p, i) => {
    const o = v.object(`points[${i}]`, p);
    v.string(`points[${i}].label`, o.label, { nonEmpty: true });
    v.number(`points[${i}].accuracy`, o.accuracy);
    v.number(`points[${i}].speedup`, o.speedup, { min: 0, exclusiveMin: true });
    if (o.lambda !== undefined) v.number(`points[${i}].lambda`, o.lambda, { min: 0 });
    if (o.dtype !== undefined) v.oneOf(`points[${i}].dtype`, o.dtype, ['int8'] as const);
    return o as unknown as FrontierPoint;
  });
}

/** What renderChart gives: the SVG text and the PNG drawn from it. */
export interface RenderedChart {
  svg: string;
  png: Buffer;
  width: number;
  height: number;
}

let modules: Promise<[VegaLite, Vega, Resvg]> | undefined;

/**
 * Renders a vega-lite spec: compiled by vega-lite, drawn to SVG by vega's headless view, rasterised by resvg at
 * `scale` pixels per CSS pixel. Every chart of the library (frontier, mask pictures) goes through here.
 */
export async function renderChart(spec: object, scale = 2): Promise<RenderedChart> {
  modules ??= Promise.all([importModule('vega-lite'), importModule('vega'), importModule('@resvg/resvg-js')]) as Promise<[VegaLite, Vega, Resvg]>;
  const [vl, vega, resvg] = await modules;
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  // An image mark that asks not to be smoothed gets two declarations from vega, the second ('pixelated', CSS
  // Images 3) unknown to resvg, which then smooths: the first ('optimizeSpeed', SVG 1.1) is kept alone so
  // that a mask's blocks keep sharp edges.
  svg = svg.replaceAll('image-rendering: optimizeSpeed; image-rendering: pixelated;', 'image-rendering: optimizeSpeed;');
  // vega writes text in the generic 'sans-serif' family: the system's fonts are loaded to draw it.
  const image = new resvg.Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, font: { loadSystemFonts: true } }).render();
  return { svg, png: image.asPng(), width: image.width, height: image.height };
}

/**
 * Plots accuracy vs speed-up and writes `<file>.svg` and `<file>.png` (a `.png` or `.svg` ending of `file` is
 * dropped first). The points are checked before anything is rendered or written.
 */
export async function plotFrontier(points: readonly FrontierPoint[], file: string, o: PlotOptions = {}): Promise<PlotFiles> {
  const checked = checkPoints(points);
  v.string('file', file, { nonEmpty: true });
  const scale = o.scale === undefined ? 2 : v.number('options.scale', o.scale, { min: 0.1, max: 8 });
  for (const k of ['width', 'height'] as const) if (o[k] !== undefined) v.integer(`options.${k}`, o[k], { min: 50, max: 4000 });
  const base = file.replace(/\.(png|svg)$/i, '');
  const chart = await renderChart(frontierSpec(checked, o), scale);
  const files: PlotFiles = { svg: `${base}.svg`, png: `${base}.png`, width: chart.width, height: chart.height };
  writeFileAtomicSync(files.svg, chart.svg);
  writeFileAtomicSync(files.png, chart.png);
  return files;
}
