/** `blockprune info <model-dir>`: what a checkpoint holds (task, parameters, per-layer heads and FFN widths). */
import { BertModel } from '../../model/model';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import type { HubOptions } from '../../hub/hub';
import { bool, deviceFlag, str } from '../flags';

export const infoCommand: Command<{ dir: string; device: string; json: boolean; hub: HubOptions }> = {
  name: 'info',
  synopsis: 'info <model-dir>',
  summary: 'load a checkpoint and print its task, parameter count and per-layer sizes',
  help: `Usage: blockprune info <model-dir|org/name> [--device cpu] [--json] [--revision REV] [--offline]

Loads config.json plus model.safetensors / model.safetensors.index.json / pytorch_model.bin and prints the
task, parameter count and, per layer, the heads kept and the FFN width.

${HUB_HELP}`,
  flags: { device: str, json: bool, ...HUB_FLAGS },
  args({ values, positionals }) {
    return { dir: modelDirArg(positionals, 1, 'info needs exactly one <model-dir>'), device: deviceFlag(values), json: values.json === true, hub: hubFlags(values) };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    const c = model.config;
    const summary = {
      dir: model.sourceDir,
      task: model.task,
      architecture: c.architectures?.[0],
      weights: model.loadReport?.weightsFile,
      parameters: model.numParameters,
      layers: model.layers.map((l, i) => ({ layer: i, heads: l.heads, keptHeads: l.keptHeads, ffn: l.intermediateSize })),
      family: model.family,
      hidden: model.dimensions.hiddenSize,
      vocab: model.dimensions.vocabSize,
    };
    if (a.json) console.log(JSON.stringify(summary, null, 2));
    else {
      console.log(`${summary.dir}\n  ${summary.architecture} (${summary.task}), ${summary.parameters.toLocaleString('en-US')} parameters`);
      console.log(`  weights: ${summary.weights}`);
      for (const l of summary.layers) console.log(`  layer ${String(l.layer).padStart(2)}: ${l.heads} heads [${l.keptHeads.join(',')}], FFN ${l.ffn}`);
    }
    model.dispose();
  },
};
