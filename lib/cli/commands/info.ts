/** `blockprune info <model-dir>`: what a checkpoint holds (task, parameters, per-layer heads and FFN widths). */
import { BertModel } from '../../model/model';
import { buildReport, formatDensity } from '../../report/report';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import type { HubOptions } from '../../hub/hub';
import { bool, deviceFlag, str } from '../flags';

export const infoCommand: Command<{ dir: string; device: string; json: boolean; hub: HubOptions }> = {
  name: 'info',
  synopsis: 'info <model-dir>',
  summary: 'load a checkpoint and print its task, parameter count and per-layer sizes',
  help: `Usage: blockprune info <model-dir|org/name> [--device cpu] [--json] [--revision REV] [--offline]

Loads config.json plus model.safetensors / model.safetensors.index.json / pytorch_model.bin and prints the
task, parameter count, its number format (fp32, or quantized int8 / bf16, and the weight bytes), whether it is patched (masks, and their threshold), its density (non-zero weights of the
encoder's linear layers, masks when patched, over those of the dense architecture: as report and train print it)
and, per layer, the heads and the FFN width of its tensors (report shows what a patched model's masks keep).

${HUB_HELP}`,
  flags: { device: str, json: bool, ...HUB_FLAGS },
  args({ values, positionals }) {
    return { dir: modelDirArg(positionals, 1, 'info needs exactly one <model-dir>'), device: deviceFlag(values), json: values.json === true, hub: hubFlags(values) };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    const c = model.config;
    const { weights, layers: kept } = await buildReport(model, { masks: true });
    const summary = {
      dir: model.sourceDir,
      task: model.task,
      architecture: c.architectures?.[0],
      weights: model.loadReport?.weightsFile,
      parameters: model.numParameters,
      dtype: model.dtype,
      weightBytes: model.weightBytes,
      patched: model.patched,
      ...(model.patched ? { threshold: model.threshold } : {}),
      density: weights,
      layers: model.layers.map((l, i) => ({
        layer: i,
        heads: l.heads,
        keptHeads: l.keptHeads,
        ffn: l.intermediateSize,
        ...(model.patched ? { alive: { heads: kept[i].heads, keptHeads: kept[i].keptHeads, ffn: kept[i].ffn } } : {}),
      })),
      family: model.family,
      hidden: model.dimensions.hiddenSize,
      vocab: model.dimensions.vocabSize,
    };
    if (a.json) console.log(JSON.stringify(summary, null, 2));
    else {
      console.log(`${summary.dir}\n  ${summary.architecture} (${summary.task}), ${summary.parameters.toLocaleString('en-US')} parameters`);
      console.log(`  weights: ${summary.weights}`);
      console.log(
        model.dtype === 'fp32'
          ? `  fp32 (not quantized), ${(model.weightBytes / 1e6).toFixed(2)} MB of weights`
          : `  quantized: ${model.dtype} encoder linears (${model.config.quantization_config ? (model.config.quantization_config as { weights: string }).weights : ''}), ${(model.weightBytes / 1e6).toFixed(2)} MB of weights`,
      );
      console.log(model.patched ? `  patched: masks at threshold ${model.threshold} (report: what they keep)` : '  not patched (no masks)');
      console.log(`  ${formatDensity(weights!)}`);
      const masked = (n: number) => (model.patched ? ` (${n} alive in the masks)` : '');
      for (const l of summary.layers)
        console.log(`  layer ${String(l.layer).padStart(2)}: ${l.heads} heads [${l.keptHeads.join(',')}]${masked(kept[l.layer].heads)}, FFN ${l.ffn}${masked(kept[l.layer].ffn)}`);
    }
    model.dispose();
  },
};
