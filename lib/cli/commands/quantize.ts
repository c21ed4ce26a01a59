/** `blockprune quantize <model-dir> <out-dir> --dtype int8|bf16`: an int8 or bf16 copy for inference (issue 16). */
import { BertModel } from '../../model/model';
import * as v from '../../runtime/validate';
import type { HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { bool, deviceFlag, str } from '../flags';
import { outputDifference, quantizeSummary } from './compact';
import { QUANT_DTYPES } from '../../model/model';

interface QuantizeArgs {
  dir: string;
  outArg: string;
  out: string;
  dtype: (typeof QUANT_DTYPES)[number];
  perChannel: boolean;
  device: string;
  hub: HubOptions;
}

export const quantizeCommand: Command<QuantizeArgs> = {
  name: 'quantize',
  synopsis: 'quantize <dir> <out>',
  summary: 'an int8 or bf16 copy of a model for inference (encoder linears; the rest stays fp32)',
  help: `Usage: blockprune quantize <model-dir|org/name> <out-dir> --dtype int8|bf16 [--per-tensor] [--device cpu]
       [--revision REV] [--offline]

Quantizes the six linears of every encoder layer: int8 (symmetric weights with one scale per output channel,
or per tensor with --per-tensor; activations quantized per row at run time, as onnxruntime's dynamic
quantization) or bf16 (weights and activations in bf16, fp32 sums). Embeddings, LayerNorms, pooler and heads
stay fp32. Saves to <out-dir> (int8/bf16 tensors in model.safetensors, quantization_config in config.json;
loads with blockprune) and prints the weight bytes before/after and the largest output difference from the fp32
model on a random batch. A patched model is refused: compact it first (or use compact --quantize).

${HUB_HELP}`,
  flags: { dtype: str, 'per-tensor': bool, device: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    return {
      dir: modelDirArg(positionals, 2, 'quantize needs <model-dir> <out-dir>'),
      dtype: v.oneOf('--dtype', values.dtype, QUANT_DTYPES),
      perChannel: values['per-tensor'] !== true,
      device: deviceFlag(values),
      outArg: positionals[1],
      out: v.writableDirectory('<out-dir>', positionals[1]),
      hub: hubFlags(values),
    };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    try {
      const quantized = await model.quantize({ dtype: a.dtype, perChannel: a.perChannel });
      try {
        const diff = await outputDifference(model, quantized);
        await quantized.save(a.out);
        console.log(`quantized ${a.dir} -> ${a.outArg}${a.dtype === 'int8' ? (a.perChannel ? ' (per channel)' : ' (per tensor)') : ''}\n  ${quantizeSummary(model, quantized, diff)}`);
      } finally {
        quantized.dispose();
      }
    } finally {
      model.dispose();
    }
  },
};
