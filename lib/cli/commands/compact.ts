/** `blockprune compact <model-dir> <out-dir>`: drop dead heads and empty FFN units (nn_pruning's rule, or the exact one). */
import { BertModel, QUANT_DTYPES } from '../../model/model';
import * as v from '../../runtime/validate';
import type { HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { deviceFlag, str } from '../flags';

interface CompactArgs {
  dir: string;
  outArg: string;
  out: string;
  mode: 'dense' | 'heads';
  deadHeads: 'exact' | 'reference';
  device: string;
  filled?: string;
  quantize?: 'int8' | 'bf16';
  hub: HubOptions;
}

export const compactCommand: Command<CompactArgs> = {
  name: 'compact',
  synopsis: 'compact <dir> <out>',
  summary: 'drop dead heads and empty FFN units: a smaller dense model',
  help: `Usage: blockprune compact <model-dir|org/name> <out-dir> [--mode dense|heads] [--dead-heads reference|exact]
       [--quantize int8|bf16] [--export-filled DIR] [--device cpu] [--revision REV] [--offline]

Compacts a pruned model (patched checkpoints are compiled first): dead heads are removed, empty FFN units
dropped (--mode dense, the default) or only heads (--mode heads). Dead heads: --dead-heads reference (the
default, nn_pruning's rule: no weight left in q, k or v; a head with zero queries or keys still attended, so the
outputs move by what it added) or exact (only heads whose values or output columns are all zero: the same outputs). Saves the smaller dense model to
<out-dir> (per-layer sizes in config.json; loads with blockprune) and prints parameters before/after and the
largest output difference on a random batch. --export-filled DIR also writes an HF-compatible copy (FFN
zero-padded back to intermediate_size, heads via pruned_heads). --quantize int8|bf16 saves the compact model
quantized (as 'blockprune quantize' does, int8 per channel; the --export-filled copy stays fp32).

${HUB_HELP}`,
  flags: { mode: str, 'dead-heads': str, 'export-filled': str, quantize: str, device: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    return {
      dir: modelDirArg(positionals, 2, 'compact needs <model-dir> <out-dir>'),
      mode: v.oneOf('--mode', values.mode ?? 'dense', ['dense', 'heads'] as const),
      deadHeads: v.oneOf('--dead-heads', values['dead-heads'] ?? 'reference', ['reference', 'exact'] as const),
      device: deviceFlag(values),
      outArg: positionals[1],
      out: v.writableDirectory('<out-dir>', positionals[1]),
      filled: values['export-filled'] === undefined ? undefined : v.writableDirectory('--export-filled', values['export-filled']),
      quantize: values.quantize === undefined ? undefined : v.oneOf('--quantize', values.quantize, QUANT_DTYPES),
      hub: hubFlags(values),
    };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    const { model: small, report } = await model.compact(a.mode, { deadHeads: a.deadHeads });
    const diff = await outputDifference(model, small);
    const quantized = a.quantize ? await small.quantize({ dtype: a.quantize }) : undefined;
    const quantDiff = quantized ? await outputDifference(small, quantized) : 0;
    await (quantized ?? small).save(a.out);
    if (a.filled) await small.exportFilled(a.filled);
    console.log(
      `compacted ${a.dir} -> ${a.outArg} (${a.mode}${quantized ? `, ${quantized.dtype}` : ''})\n` +
        `  parameters ${report.parametersBefore.toLocaleString('en-US')} -> ${report.parametersAfter.toLocaleString('en-US')} ` +
        `(${(report.parametersBefore / report.parametersAfter).toFixed(2)}x fewer)\n` +
        `  heads per layer ${report.heads.join(' ')}\n  FFN per layer ${report.ffnWidths.join(' ')}\n` +
        `  max |output difference| on a random batch: ${diff.toExponential(2)}` +
        (quantized ? `\n  ${quantizeSummary(small, quantized, quantDiff)}` : ''),
    );
    model.dispose();
    small.dispose();
    quantized?.dispose();
  },
};


/** One line: dtype, weight bytes before and after, and the output difference quantization made. */
export function quantizeSummary(fp32: BertModel, quantized: BertModel, diff: number): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  return `${quantized.dtype}: weights ${mb(fp32.weightBytes)} -> ${mb(quantized.weightBytes)}, max |output difference| vs fp32 on a random batch: ${diff.toExponential(2)}`;
}

/** Largest absolute difference between two models' outputs on a random 2 x 32 batch. */
export async function outputDifference(a: BertModel, b: BertModel): Promise<number> {
  const d = a.dimensions;
  const seqLen = Math.min(32, d.maxSequenceLength);
  const ids = new Int32Array(2 * seqLen).map((_, i) => 1 + ((i * 7919) % (d.vocabSize - 1)));
  const batch = { inputIds: ids, batchSize: 2, seqLen };
  const [oa, ob] = [await a.forward(batch), await b.forward(batch)];
  let m = 0;
  for (const k of Object.keys(oa)) {
    const x = oa[k].data as Float32Array;
    const y = ob[k].data as Float32Array;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}
