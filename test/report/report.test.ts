/**
 * Reports users look at: the parameter count the reference prints for a compact bert-base QA model, the
 * per-layer shape table, and mask pictures: charts (titles, axes, legends) of rasters showing what is kept.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { buildReport, DENSITY_DEFINITION, formatReport, parameterSummary } from '../../lib/report/report';
import { densitySpec, maskGridSpec, maskRaster, matrixSpec, writeMaskImages } from '../../lib/report/mask-plots';
import { renderChart } from '../../lib/report/plot';
import { encodePng } from '../../lib/report/png';
import { shared, tempDir, withShared } from '../helpers';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../../lib/runtime/native';

withShared('data/bert-base-uncased/config.json')('bert-base QA with 64 heads and FFN widths summing to 6,293 has 46,161,559 parameters (2.38X)', async (t) => {
  const cfgFile = shared('data/bert-base-uncased/config.json');
  const config = JSON.parse(readFileSync(cfgFile, 'utf8'));
  // Layer 0 as in the reference walkthrough: 4 heads (q/k/v [256, 768]) and FFN 552; the rest sums to 64 / 6,293.
  const heads = [4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 1];
  const widths = [552, 600, 580, 560, 540, 520, 500, 480, 460, 440, 420, 641];
  t.is(heads.reduce((a, b) => a + b), 64);
  t.is(widths.reduce((a, b) => a + b), 6293);
  const pruned_heads = Object.fromEntries(heads.map((h, i) => [String(i), Array.from({ length: 12 - h }, (_, k) => 11 - k).reverse()]));
  const m = await BertModel.fromConfig({ ...config, pruned_heads, intermediate_sizes: widths }, { task: 'question-answering' });
  const s = parameterSummary(m);
  t.is(s.total, 46_161_559);
  t.is(s.embeddings, 23_837_184);
  t.is(s.encoder, 22_322_837);
  t.is(s.head, 1_538);
  t.is((110e6 / s.total).toFixed(2), '2.38');
  t.is(s.headsKept, 64);
  const text = formatReport(await buildReport(m));
  t.true(text.includes('[3072, 768] => [552, 768], intermediate.dense.weight'), text.slice(0, 400));
  t.true(text.includes('[768, 768] => [256, 768], attention.self.query.weight'));
  t.true(text.includes('[768, 3072] => [768, 552], output.dense.weight'));
  t.true(text.includes('vs BERT-base (110.0M): 2.38X'));
  t.log(text.split('\n').slice(0, 5).join('\n'));
  m.dispose();
});

function readPng(buf: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  if (!buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('ascii', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      channels = data[9] === 2 ? 3 : 1;
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) pixels.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  return { width, height, channels, pixels };
}

test('encodePng round-trips through zlib', (t) => {
  const px = new Uint8Array(7 * 3).map((_, i) => i * 11);
  const png = readPng(encodePng(7, 3, 1, px));
  t.is(png.width, 7);
  t.is(png.height, 3);
  t.deepEqual(Array.from(png.pixels), Array.from(px));
  t.throws(() => encodePng(2, 2, 3, new Uint8Array(5)), { instanceOf: RangeError });
});

withShared('fixtures/pruning')('mask pictures: charts with the layer, matrix and density in the title, axes and a legend, over rasters of the masks', async (t) => {
  const root = shared('fixtures/pruning');
  const config = PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'hybrid', 'sparse_args.json'), 'utf8')));
  const model = await BertModel.fromPretrained(join(root, 'model'));
  await model.patch(config);
  await model.loadState(join(root, 'hybrid', 'mask_scores.safetensors'));
  await model.setThreshold(0.1);
  const tmp = tempDir();
  try {
    const files = await writeMaskImages(model, tmp.path);
    t.is(files.length, 2 * 6 + 2);
    for (const f of files) {
      const png = readFileSync(f);
      t.true(png.subarray(1, 4).toString('latin1') === 'PNG' && png.readUInt32BE(16) > 200 && png.readUInt32BE(20) > 150, f);
    }
    // The raster a chart shows is the mask itself, one pixel per weight: dark exactly where a weight is kept.
    // Layer 0 query: head 1 (rows 16..31) is pruned in the fixture (scores -8): light.
    const masks = await model.masks();
    const q = masks['mask.bert.encoder.layer.0.attention.self.query'];
    const m = q.data as Uint8Array;
    const raster = maskRaster(m, 64, 64);
    const img = readPng(raster.png);
    t.deepEqual([img.width, img.height, raster.cellRows, raster.cellCols], [64, 64, 64, 64]);
    let agree = 0;
    for (let i = 0; i < 64 * 64; i++) agree += (img.pixels[i] < 128) === (m[i] !== 0) ? 1 : 0;
    t.is(agree, 64 * 64, 'dark pixels are exactly the kept weights');
    for (let r = 16; r < 32; r++) t.true(img.pixels[r * 64 + 5] > 200, 'pruned head 1 is light');
    // A larger matrix is averaged: 2 x 2 weights a cell, gray where partly kept.
    const half = maskRaster(new Uint8Array([1, 0, 1, 1, 0, 0, 1, 1]), 2, 4, 1);
    t.deepEqual([half.cellRows, half.cellCols], [1, 1]);
    const g = readPng(half.png).pixels[0];
    t.true(g > 30 && g < 245, `partly kept is gray: ${g}`);

    // What the chart says is the report's density of that matrix, with axes and a legend.
    const report = await buildReport(model, { masks: true });
    const density = report.density!['bert.encoder.layer.0.attention.self.query'];
    t.is(density, m.reduce((a, b) => a + b, 0) / (64 * 64));
    const chart = await renderChart(matrixSpec({ layer: 0, linear: 'attention.self.query', density, rows: 64, cols: 64, raster }));
    const pct = `${(100 * density).toFixed(1)}%`;
    for (const text of ['layer 0 · attention.self.query', `density ${pct} · 64 x 64`, 'input (column)', 'output (row)', 'kept fraction', raster.png.toString('base64')])
      t.true(chart.svg.includes(text), `the chart shows ${text.slice(0, 40)}`);
    const gridSvg = (await renderChart(maskGridSpec([{ layer: 0, linear: 'attention.self.query', density, rows: 64, cols: 64, raster }], ['attention.self.query'], 0.5))).svg;
    t.true(gridSvg.includes(pct) && gridSvg.includes('layer 0') && gridSvg.includes('encoder density 50.0%'));
    // Heads: alive in q, k and v, masked, or removed by an earlier compaction.
    const heads = (await renderChart(densitySpec(report, 4, [[0, 1, 2, 3], [0, 1, 2]]))).svg;
    for (const text of ['alive', 'masked', 'removed', 'attention', 'FFN', 'density (%)']) t.true(heads.includes(text), text);
    t.false(report.layers[0].keptHeads.includes(1));
    t.true(report.layers[0].attentionDensity! < report.layers[0].ffnDensity!, 'layer 0 prunes attention more than FFN in the fixture');
    t.true(report.layers[0].density! > 0 && report.layers[0].density! < 1);
    t.log(formatReport(report).split('\n').slice(0, 9).join('\n'));
  } finally {
    tmp.cleanup();
    model.dispose();
  }
});

withShared('fixtures/pruning')('a patched checkpoint: report and info say patched, count what the masks keep, one density as its compact model', async (t) => {
  const root = shared('fixtures/pruning');
  const tmp = tempDir();
  const source = await BertModel.fromPretrained(join(root, 'model'));
  try {
    await source.patch(PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'hybrid', 'sparse_args.json'), 'utf8'))));
    await source.loadState(join(root, 'hybrid', 'mask_scores.safetensors'));
    await source.setThreshold(0.1);
    await source.save(tmp.path);
    source.dispose();
    const model = await BertModel.fromPretrained(tmp.path);
    const r = await buildReport(model, { masks: true });
    t.true(r.patched);
    t.is(r.threshold, 0.1);
    // The density counted here, independently: ones of every mask over the dense weights of the six linears.
    let kept = 0;
    for (const [k, m] of Object.entries(await model.masks())) if (k.startsWith('mask.')) kept += (m.data as Uint8Array).reduce((a, b) => a + b, 0);
    const d = model.dimensions;
    const dense = d.numLayers * (4 * d.hiddenSize * d.numHeads * d.headDim + 2 * d.hiddenSize * d.intermediateSize);
    t.deepEqual([r.weights!.nonZero, r.weights!.dense], [kept, dense]);
    t.true(r.weights!.density < 0.9, `${r.weights!.density}`);
    // Heads and FFN units: what the masks keep (head 1 of layer 0 is pruned in the fixture), not the tensors' 4 / 128.
    t.false(r.layers[0].keptHeads.includes(1));
    t.true(r.parameters.headsKept < r.parameters.headsTotal);
    const text = formatReport(r);
    t.regex(text, /^Patched: masks at threshold 0\.1/);
    t.regex(text, new RegExp(`heads alive in the q, k and v masks: ${r.parameters.headsKept} of 8`));
    t.notRegex(text, /100\.0%/, 'no figure of the tensors passes for what the masks keep');
    const densityLine = text.split('\n').find((l) => l.includes(DENSITY_DEFINITION))!;
    t.truthy(densityLine);

    // Its compact model: the heads and FFN units the patched report counted, the same definition of density.
    const { model: compact } = await model.compact('dense');
    const c = await buildReport(compact, { masks: true });
    t.false(c.patched);
    t.deepEqual(c.layers.map((l) => [l.heads, l.keptHeads, l.ffn]), r.layers.map((l) => [l.heads, l.keptHeads, l.ffn]));
    t.is(c.weights!.dense, dense);
    t.true(c.weights!.nonZero <= kept && c.weights!.nonZero > 0.8 * kept, `compact ${c.weights!.nonZero} vs masks ${kept}`);
    t.log(`patched: ${densityLine.trim()}\ncompact: ${formatReport(c).split('\n').find((l) => l.includes(DENSITY_DEFINITION))!.trim()}`);
    compact.dispose();
    model.dispose();

    // The command line: info says patched and the threshold, and prints report's density line.
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(packageRoot(), 'dist', 'lib', 'cli', 'main.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
    const info = cli('info', tmp.path);
    t.is(info.status, 0, info.stderr);
    t.regex(info.stdout, /patched: masks at threshold 0\.1/);
    t.true(info.stdout.includes(densityLine.trim()), info.stdout);
    t.regex(info.stdout, /layer  0: 4 heads \[0,1,2,3\] \(3 alive in the masks\)/);
    const json = JSON.parse(cli('info', tmp.path, '--json').stdout);
    t.like(json, { patched: true, threshold: 0.1, density: { nonZero: kept, dense } });
    const report = cli('report', tmp.path);
    t.is(report.status, 0, report.stderr);
    t.true(report.stdout.includes(densityLine.trim()));
  } finally {
    tmp.cleanup();
  }
});
