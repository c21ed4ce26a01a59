/** `blockprune compact <model-dir> <out-dir>`: drop pruned heads and empty FFN units, same outputs. */
import { BertModel } from '../../model/model';
import * as v from '../../runtime/validate';
import type { HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { deviceFlag, str } from '../flags';

interface CompactArgs {
  dir: string;
  outArg: string;
  out: string;
  mode: 'dense' | 'heads';
  device: string;
  filled?: string;
  hub: HubOptions;
}

export const compactCommand: Command<CompactArgs> = {
  name: 'compact',
  synopsis: 'compact <dir> <out>',
  summary: 'drop pruned heads and empty FFN units: a smaller dense model with the same outputs',
  help: `Usage: blockprune compact <model-dir|org/name> <out-dir> [--mode dense|heads] [--export-filled DIR] [--device cpu]
       [--revision REV] [--offline]

Compacts a pruned model (patched checkpoints are compiled first): heads dead in q, k and v are removed, empty
FFN units dropped (--mode dense, the default) or only heads (--mode heads). Saves the smaller dense model to
<out-dir> (per-layer sizes in config.json; loads with blockprune) and prints parameters before/after and the
largest output difference on a random batch. --export-filled DIR also writes an HF-compatible copy (FFN
zero-padded back to intermediate_size, heads via pruned_heads).

${HUB_HELP}`,
  flags: { mode: str, 'export-filled': str, device: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    return {
      dir: modelDirArg(positionals, 2, 'compact needs <model-dir> <out-dir>'),
      mode: v.oneOf('--mode', values.mode ?? 'dense', ['dense', 'heads'] as const),
      device: deviceFlag(values),
      outArg: positionals[1],
      out: v.writableDirectory('<out-dir>', positionals[1]),
      filled: values['export-filled'] === undefined ? undefined : v.writableDirectory('--export-filled', values['export-filled']),
      hub: hubFlags(values),
    };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    const { model: small, report } = await model.compact(a.mode);
    const diff = await outputDifference(model, small);
    await small.save(a.out);
    if (a.filled) await small.exportFilled(a.filled);
    console.log(
      `compacted ${a.dir} -> ${a.outArg} (${a.mode})\n` +
        `  parameters ${report.parametersBefore.toLocaleString('en-US')} -> ${report.parametersAfter.toLocaleString('en-US')} ` +
        `(${(report.parametersBefore / report.parametersAfter).toFixed(2)}x fewer)\n` +
        `  heads per layer ${report.heads.join(' ')}\n  FFN per layer ${report.ffnWidths.join(' ')}\n` +
        `  max |output difference| on a random batch: ${diff.toExponential(2)}`,
    );
    model.dispose();
    small.dispose();
  },
};

/** Largest absolute difference between two models' outputs on a random 2 x 32 batch. */
async function outputDifference(a: BertModel, b: BertModel): Promise<number> {
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
