/**
 * int8 ONNX export (issue 16): quant.h's weight rule in TypeScript against hand-made cases (ties included);
 * one int8 linear as the export writes it, run in onnxruntime-node, against a TypeScript reference of the
 * graph's math; fixture models exported with quantize 'int8' and run in onnxruntime against our fp32
 * forward, with the file read back (MatMulInteger nodes and int8 initializers counted, size against fp32); a
 * model quantized by model.quantize() exported with its own integers, against quantizing at export and against
 * our int8 forward.
 */
import test, { ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BertModel } from '../../lib/model/model';
import { quantizeInt8, roundHalfEven, type Int8Weights } from '../../lib/model/int8-weights';
import { exportOnnx, OnnxExportOptions } from '../../lib/model/onnx';
import { GraphBuilder } from '../../lib/model/onnx-graph';
import { int8Linear } from '../../lib/model/onnx-int8';
import { DataType, graphProto, modelProto, valueInfoProto } from '../../lib/model/onnx-messages';
import { native, TensorData } from '../../lib/runtime/native';
import { fixtureBatch, maxAbsDiff, readTensors, shared, tempDir, withShared } from '../helpers';
import { feeds, type OnnxBatch } from './onnx-feeds';

// The machine is small and shared: one thread for each runtime.
native().setNumThreads(1);
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const f = Math.fround;

// ---- quant.h's weight rule --------------------------------------------------------------------------

test('roundHalfEven is nearbyint: ties go to the even integer, the rest to the nearest', (t) => {
  const cases: Array<[number, number]> = [
    [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [-3.5, -4], [126.5, 126], [-126.5, -126],
    [0.49999997, 0], [0.50000006, 1], [-2.4, -2], [-2.6, -3], [7, 7], [0, 0],
  ];
  for (const [x, want] of cases) t.is(roundHalfEven(x) + 0, want, `nearbyint(${x})`); // + 0: -0 is 0
});

test('quantizeInt8: scales max|w| / 127 per row or per tensor, round half to even, zero rows get scale 1', (t) => {
  // Row 0: max 127 makes the scale exactly 1, so w / scale are the ties themselves. Row 1: scale 2, so
  // 1, 3, 5, -5 are ties 0.5, 1.5, 2.5, -2.5. Row 2: zeros. Row 3: a small row, its own scale per channel.
  const w = Float32Array.from([
    127, 0.5, 1.5, 2.5, -0.5, -2.5,
    254, 1, 3, 5, -5, -254,
    0, 0, 0, 0, 0, 0,
    0.25, -0.125, 0, 0, 0, 0.0625,
  ]);
  const pc = quantizeInt8(w, 4, 6);
  t.deepEqual([...pc.scale], [1, 2, 1, f(0.25 / 127)]);
  t.deepEqual([...pc.q], [127, 0, 2, 2, 0, -2, 127, 0, 2, 2, -2, -127, 0, 0, 0, 0, 0, 0, 127, -64, 0, 0, 0, 32]);
  // -0.125 / (0.25 / 127) = -63.5 in exact arithmetic; in float32 the scale is not exact, so the quotient
  // is not a tie and lands on -64 (as the C++ rule in float32 does): the row shows float32 steps are kept.
  t.is(roundHalfEven(f(-0.125 / f(0.25 / 127))), -64);
  // Per tensor: one scale, max 254 / 127 = 2, for every row; row 3 then rounds to zero but for 0.25 -> 0.125 -> 0.
  const pt = quantizeInt8(w, 4, 6, false);
  t.deepEqual([...pt.scale], [2, 2, 2, 2]);
  t.deepEqual([...pt.q.subarray(0, 12)], [64, 0, 1, 1, 0, -1, 127, 0, 2, 2, -2, -127]);
  t.deepEqual([...pt.q.subarray(18)], [0, 0, 0, 0, 0, 0]);
  const zeros = quantizeInt8(new Float32Array(6), 2, 3, false);
  t.deepEqual([...zeros.scale], [1, 1]);
  t.throws(() => quantizeInt8(w, 5, 6), { instanceOf: RangeError, message: /\[5, 6\]/ });
});

// ---- one int8 linear: onnxruntime against a reference of the graph's math ----------------------------

/** A one-graph ONNX model of the nodes in `g`, float input "x" [rows..., K] and output "y". */
function graphBytes(g: GraphBuilder, xDims: Array<number | string>, yDims: Array<number | string>): Uint8Array {
  const graph = graphProto({
    name: 'int8_linear',
    docString: '',
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [valueInfoProto('x', DataType.FLOAT, xDims)],
    outputs: [valueInfoProto('y', DataType.FLOAT, yDims)],
  });
  const m = modelProto({ irVersion: 8, producerName: 'test', producerVersion: '0', domain: 'test', modelVersion: 1, docString: '', graph, opset: 17, metadata: {} });
  return Buffer.concat(m.finish());
}

/**
 * The int8 linear's math in float32 steps (onnx-int8.ts): per row amax, inv = 127 / amax, xscale = amax /
 * 127 (1 and 1 for a zero row), xq = clamp(nearbyint(x * inv)), exact integer sums, then (acc * wscale) *
 * xscale + bias. `quantHOrder`: acc * (xscale * wscale) + bias instead, quant.h's order.
 */
function referenceLinear(x: Float32Array, rows: number, w: Int8Weights, bias: Float32Array, quantHOrder = false): Float32Array {
  const { rows: N, cols: K } = w;
  const y = new Float32Array(rows * N);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[r * K + k]));
    const inv = amax > 0 ? f(127 / amax) : 1;
    const xscale = amax > 0 ? f(amax / 127) : 1;
    const xq = Array.from({ length: K }, (_, k) => Math.min(127, Math.max(-127, roundHalfEven(f(x[r * K + k] * inv)))));
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xq[k] * w.q[n * K + k];
      const deq = quantHOrder ? f(acc * f(xscale * w.scale[n])) : f(f(acc * w.scale[n]) * xscale);
      y[r * N + n] = f(deq + bias[n]);
    }
  }
  return y;
}

test('one int8 linear in onnxruntime equals the TypeScript reference of its math, at every graph optimization level', async (t) => {
  const [B, S, K, N] = [2, 4, 24, 10];
  let seed = 7;
  const rand = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 2 - 1;
  const w = Float32Array.from({ length: N * K }, () => 0.3 * rand());
  const bias = Float32Array.from({ length: N }, () => 0.1 * rand());
  const x = Float32Array.from({ length: B * S * K }, () => 3 * rand());
  // Row 1: zeros (scale 1). Row 2: max 127 makes inv exactly 1, and halves are ties that must go to even.
  x.fill(0, K, 2 * K);
  x.set(Float32Array.from({ length: K }, (_, k) => (k === 0 ? 127 : ((k % 7) - 3) + 0.5)), 2 * K);
  for (const perChannel of [true, false]) {
    const wq = quantizeInt8(w, N, K, perChannel);
    const g = new GraphBuilder();
    int8Linear(g, 'x', 'dense', wq, bias, 'y');
    const want = referenceLinear(x, B * S, wq, bias);
    const fp32 = new Float32Array(B * S * N).map((_, i) => {
      const [r, n] = [Math.floor(i / N), i % N];
      let s = bias[n];
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      return s;
    });
    // Tolerance 1e-5: both compute the same integers and the same three float32 roundings; only a fused
    // multiply-add in onnxruntime's Mul/Add could differ, by an ulp of values below 40.
    const ATOL = 1e-5;
    for (const level of ['disabled', 'basic', 'extended', 'all'] as const) {
      const session = await ort.InferenceSession.create(graphBytes(g, ['batch', 'sequence', K], ['batch', 'sequence', N]), { ...SESSION, graphOptimizationLevel: level });
      try {
        const y = (await session.run({ x: new ort.Tensor('float32', x, [B, S, K]) })).y;
        t.deepEqual([...y.dims], [B, S, N]);
        const d = maxAbsDiff(y.data as Float32Array, want);
        t.log(`${perChannel ? 'per channel' : 'per tensor'}, optimization ${level}: max |onnxruntime - reference| ${d.toExponential(2)}`);
        t.true(d <= ATOL, `${level}: ${d}`);
      } finally {
        await session.release();
      }
    }
    // The zero row is its bias alone; the graph's order against quant.h's differs by float32 rounding only;
    // and quantization is really on: the result is not the float32 product.
    t.deepEqual([...want.subarray(N, 2 * N)], [...bias]);
    const orders = maxAbsDiff(want, referenceLinear(x, B * S, wq, bias, true));
    t.log(`(acc * wscale) * xscale against quant.h's acc * (xscale * wscale): max |diff| ${orders.toExponential(2)}`);
    t.true(orders <= ATOL);
    t.true(maxAbsDiff(want, fp32) > 1e-3);
  }
});

// ---- the file, read back -------------------------------------------------------------------------------

/** The protobuf fields of `buf`: [field number, varint value or length-delimited bytes]. */
function* fields(buf: Uint8Array): Generator<[number, bigint | Uint8Array]> {
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buf[i++];
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    if (wire === 0) yield [key >> 3, varint()];
    else if (wire === 2) {
      const len = Number(varint());
      yield [key >> 3, buf.subarray(i, (i += len))];
    } else i += wire === 1 ? 8 : 4; // fixed64 / fixed32: not read here
  }
}

/** The graph of an ONNX file (ModelProto.graph = 7): its op types, its initializers' element types and sizes in bytes. */
function readGraph(file: string): { ops: string[]; initializers: Array<{ type: number; bytes: number }> } {
  const ops: string[] = [];
  const initializers: Array<{ type: number; bytes: number }> = [];
  const text = new TextDecoder();
  for (const [fm, graph] of fields(readFileSync(file)))
    if (fm === 7)
      for (const [fg, value] of fields(graph as Uint8Array)) {
        // GraphProto.node = 1 (NodeProto.op_type = 4), initializer = 5 (TensorProto.data_type = 2, raw_data = 9).
        if (fg === 1) for (const [fn, v] of fields(value as Uint8Array)) if (fn === 4) ops.push(text.decode(v as Uint8Array));
        if (fg === 5) {
          const init = { type: 0, bytes: 0 };
          for (const [ft, v] of fields(value as Uint8Array)) {
            if (ft === 2) init.type = Number(v);
            if (ft === 9) init.bytes = (v as Uint8Array).length;
          }
          initializers.push(init);
        }
      }
  return { ops, initializers };
}

// ---- fixture models ----------------------------------------------------------------------------------

async function runOnnx(file: string, batch: OnnxBatch, tokenTypes: boolean, outputs: string[]): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(file, SESSION);
  try {
    const out = await session.run(feeds(batch, tokenTypes));
    return Object.fromEntries(outputs.map((k) => [k, out[k].data as Float32Array]));
  } finally {
    await session.release();
  }
}

/**
 * int8 against fp32. Each int8 linear rounds both operands to 8 bits (half a step is 1/254 of a row's
 * largest value), an error of about 2^-8 of each product's scale; twelve such linears in two layers, the
 * LayerNorms keeping the scale, and tiny models (hidden 32: per-row scales over only 32 values) make errors
 * of a few percent of the logits' range. The bound is 8% of the largest |fp32 output| (at least 0.08):
 * measured 0.5-2.6% on these fixtures, and a mistake in the graph (a wrong scale, a transposed weight, a bad
 * zero point) gives errors the size of the outputs themselves.
 */
const REL_TOL = 0.08;

/**
 * Exports `model` as fp32, int8 and int8 per tensor, reads the files back and runs them on `batch`: the
 * checks of every int8 test below. Returns the number of int8 linears.
 */
async function checkInt8Export(t: ExecutionContext, name: string, model: BertModel, batch: OnnxBatch): Promise<number> {
  const tmp = tempDir('blockprune-onnx-int8-');
  try {
    const tokenTypes = model.structure.tokenTypes;
    const ours = await model.forward(batch);
    const files: Record<string, string> = {};
    const reports: Record<string, Awaited<ReturnType<typeof exportOnnx>>> = {};
    const variants: Array<[string, OnnxExportOptions]> = [['fp32', {}], ['int8', { quantize: 'int8' }], ['int8-per-tensor', { quantize: 'int8', perChannel: false }]];
    for (const [v, options] of variants) {
      files[v] = join(tmp.path, `${v}.onnx`);
      reports[v] = await exportOnnx(model, files[v], options);
    }
    t.is(reports.int8.quantize, 'int8');
    t.is(reports.fp32.quantize, 'none');
    const outputs = reports.int8.outputs;

    // The graph: one MatMulInteger and one int8 weight per fused q|k|v, attention output, intermediate and
    // output of each layer (a layer without heads or FFN units has none for them); no int8 in fp32.
    const expected = model.layers.reduce((n, l) => n + (l.heads > 0 ? 2 : 0) + (l.intermediateSize > 0 ? 2 : 0), 0);
    const g8 = readGraph(files.int8);
    const g32 = readGraph(files.fp32);
    t.is(g8.ops.filter((o) => o === 'MatMulInteger').length, expected);
    const int8Inits = g8.initializers.filter((x) => x.type === DataType.INT8);
    t.is(int8Inits.length, expected);
    t.is(g32.ops.filter((o) => o === 'MatMulInteger').length, 0);
    t.is(g32.initializers.filter((x) => x.type === DataType.INT8).length, 0);
    // Each of those replaces one float MatMul; the attention products, pooler and heads stay float.
    t.is(g8.ops.filter((o) => o === 'MatMul').length, g32.ops.filter((o) => o === 'MatMul').length - expected);

    // Size: every weight of the encoder linears is one int8 byte (instead of 4); embeddings, the bulk of a
    // tiny model, stay float32, and each int8 linear adds about 15 small nodes (activation quantization).
    const linearParams = model.parameterShapes
      .filter(([n, s]) => s.length === 2 && /\.layer\.\d+\./.test(n) && n.endsWith('.weight'))
      .reduce((a, [, s]) => a + s[0] * s[1], 0);
    t.is(int8Inits.reduce((a, x) => a + x.bytes, 0), linearParams);
    const ratio = reports.fp32.bytes / reports.int8.bytes;
    t.log(`${name}: fp32 ${reports.fp32.bytes} bytes, int8 ${reports.int8.bytes} bytes (${ratio.toFixed(2)}x smaller; ${linearParams} encoder linear weights at 1 byte instead of 4)`);
    t.true(reports.int8.bytes < reports.fp32.bytes);

    const fp32 = await runOnnx(files.fp32, batch, tokenTypes, outputs);
    for (const v of ['int8', 'int8-per-tensor']) {
      const got = await runOnnx(files[v], batch, tokenTypes, outputs);
      for (const k of outputs) {
        const want = ours[k].data as Float32Array;
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        const d = maxAbsDiff(got[k], want);
        t.log(`${name} ${v}: ${k} max |onnx int8 - fp32 forward| ${d.toExponential(2)} (${((100 * d) / scale).toFixed(2)}% of max(1, max |fp32|) ${scale.toFixed(3)})`);
        t.true(d <= REL_TOL * scale, `${v} ${k}: ${d}`);
        // Quantization is in effect: not the fp32 file's outputs (those are within 1e-5 of ours).
        t.true(maxAbsDiff(got[k], fp32[k]) > 1e-5, `${v} ${k} equals fp32`);
      }
    }
    return expected;
  } finally {
    tmp.cleanup();
  }
}

for (const [name, ioPath] of [
  ['bert-tiny-cls', 'bert-tiny-cls/io.safetensors'],
  ['bert-tiny-qa', 'bert-tiny-qa/io.safetensors'],
  ['roberta-tiny-cls', 'roberta-tiny-cls/io.safetensors'],
  ['distilbert-tiny-cls', 'distilbert-tiny-cls/io.safetensors'],
  ['pruning/hybrid/compact', 'pruning/io.safetensors'],
] as const) {
  withShared(`fixtures/${name}`, `fixtures/${ioPath}`)(`fixture ${name}: the int8 export runs in onnxruntime, close to fp32, MatMulInteger on int8 weights, smaller`, async (t) => {
    const model = await BertModel.fromPretrained(shared(`fixtures/${name}`));
    try {
      const io: Record<string, TensorData> = await readTensors(shared(`fixtures/${ioPath}`));
      const [B, S] = io.input_ids.shape;
      // DistilBERT's fixtures have no token types (its graph takes none; forward reads zeros).
      await checkInt8Export(t, name, model, fixtureBatch({ token_type_ids: { dtype: 'I64', shape: [B, S], data: new BigInt64Array(B * S) }, ...io }, false));
    } finally {
      model.dispose();
    }
  });
}

withShared('fixtures/bert-tiny-cls', 'fixtures/bert-tiny-cls/io.safetensors')('a model quantized by model.quantize() exports its own integers: the same graph as quantizing at export, close to our int8 forward', async (t) => {
  const fp32 = await BertModel.fromPretrained(shared('fixtures/bert-tiny-cls'));
  const tmp = tempDir('blockprune-onnx-int8-');
  const quantized: BertModel[] = [];
  try {
    const io: Record<string, TensorData> = await readTensors(shared('fixtures/bert-tiny-cls/io.safetensors'));
    const batch = fixtureBatch(io, false);
    const file = (n: string) => join(tmp.path, `${n}.onnx`);
    for (const perChannel of [true, false]) {
      const m = await fp32.quantize({ dtype: 'int8', perChannel });
      quantized.push(m);
      t.is(m.dtype, 'int8');
      const own = await exportOnnx(m, file('own')); // no quantize option: an int8 model is written int8
      t.is(own.quantize, 'int8');
      await exportOnnx(fp32, file('at-export'), { quantize: 'int8', perChannel });
      const outputs = own.outputs;
      const a = await runOnnx(file('own'), batch, true, outputs);
      const b = await runOnnx(file('at-export'), batch, true, outputs);
      const ours = await m.forward(batch);
      for (const k of outputs) {
        // The model's integers and scales are those quant.h's rule gives at export: the same outputs, exactly.
        t.is(maxAbsDiff(a[k], b[k]), 0, `${k} per ${perChannel ? 'channel' : 'tensor'}`);
        // onnxruntime on the model's own weights vs our int8 forward: the same int32 sums; float order differs
        // in attention and LayerNorm, so a value can land one rounding step apart in the next layer's int8.
        const want = ours[k].data as Float32Array;
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        const d = maxAbsDiff(a[k], want);
        t.log(`per ${perChannel ? 'channel' : 'tensor'}: ${k} max |onnxruntime int8 - our int8 forward| ${d.toExponential(2)} (scale ${scale.toFixed(3)})`);
        t.true(d <= 0.02 * scale, `${k}: ${d}`);
      }
      t.is(readGraph(file('own')).ops.filter((o) => o === 'MatMulInteger').length, 2 * 2 * fp32.layers.length);
      // A perChannel that contradicts the model's quantization is refused before anything is written.
      const err = await t.throwsAsync(exportOnnx(m, file('contradiction'), { quantize: 'int8', perChannel: !perChannel }), { message: /options\.perChannel/ });
      t.is((err as Error & { code?: string }).code, 'E_INVALID_ARG');
      t.throws(() => readFileSync(file('contradiction')), { code: 'ENOENT' });
    }
  } finally {
    for (const m of quantized) m.dispose();
    fp32.dispose();
    tmp.cleanup();
  }
});

test('a compact model with a layer without heads and one without FFN units: int8 linears only where there are weights', async (t) => {
  const model = await BertModel.fromConfig(
    {
      vocab_size: 97, hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, intermediate_size: 64, intermediate_sizes: [100, 0, 33],
      pruned_heads: { '1': [0, 2, 3], '2': [0, 1, 2, 3] }, max_position_embeddings: 48, type_vocab_size: 2,
    },
    // Bare: last_hidden_state is O(1) after its LayerNorm; a classifier's logits at HF's init (std 0.02) are near 0.
    { task: 'bare', seed: 13 },
  );
  try {
    t.deepEqual(model.layers.map((l) => [l.heads, l.intermediateSize]), [[4, 100], [1, 0], [0, 33]]);
    const [B, S] = [3, 20];
    const batch = {
      inputIds: BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 37) % 97)),
      attentionMask: BigInt64Array.from({ length: B * S }, (_, i) => (i % S < S - 4 * Math.floor(i / S) ? 1n : 0n)),
      tokenTypeIds: BigInt64Array.from({ length: B * S }, (_, i) => BigInt(i % S >= S / 2 ? 1 : 0)),
      batchSize: B,
      seqLen: S,
    };
    // layer 0: q|k|v, attention output, intermediate, output; layer 1: the attention pair; layer 2: the FFN pair.
    t.is(await checkInt8Export(t, 'compact 4/1/0 heads, FFN 100/0/33', model, batch), 8);
  } finally {
    model.dispose();
  }
});

test('options: quantize and perChannel are checked before anything is written', async (t) => {
  const model = await BertModel.fromConfig({ vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 48, max_position_embeddings: 16 }, { seed: 3 });
  const tmp = tempDir('blockprune-onnx-int8-');
  try {
    const file = join(tmp.path, 'x.onnx');
    for (const [options, re] of [
      [{ quantize: 'int4' }, /Expected one of .*int8.* for options\.quantize but received/],
      [{ quantize: 'int8', perChannel: 'yes' }, /for options\.perChannel/],
      [{ perChannel: false }, /quantize 'int8' only\) for options\.perChannel/],
      [{ quantise: 'int8' }, /quantise.*did you mean.*quantize/],
    ] as Array<[Record<string, unknown>, RegExp]>) {
      const err = await t.throwsAsync(exportOnnx(model, file, options as OnnxExportOptions), { message: re });
      t.is((err as Error & { code?: string }).code, 'E_INVALID_ARG');
    }
    t.throws(() => readFileSync(file), { code: 'ENOENT' });
  } finally {
    model.dispose();
    tmp.cleanup();
  }
});
