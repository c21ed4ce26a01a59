/** `blockprune export <model-dir> --onnx FILE`: the model as an ONNX graph (dynamic batch and sequence axes). */
import { BertModel } from '../../model/model';
import { exportOnnx } from '../../model/onnx';
import * as v from '../../runtime/validate';
import type { HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { bool, intFlag, str, UsageError } from '../flags';

export const exportCommand: Command<{ dir: string; onnx: string; opset?: number; extras: boolean; hub: HubOptions }> = {
  name: 'export',
  synopsis: 'export <dir> --onnx F',
  summary: 'write an ONNX graph (dynamic batch and sequence) for onnxruntime / transformers.js',
  help: `Usage: blockprune export <model-dir|org/name> --onnx <file.onnx> [--opset 14..17] [--extras] [--revision REV] [--offline]

Writes the model as an ONNX graph with dynamic batch and sequence axes: inputs input_ids, attention_mask,
token_type_ids (int64) -> logits | start_logits, end_logits | last_hidden_state, pooler_output. Dense and
compact models (per-layer heads and FFN widths) export; a patched checkpoint is compiled first. Runs in
onnxruntime (onnxruntime-node, transformers.js) with the same outputs (within 1e-5).

${HUB_HELP}`,
  flags: { onnx: str, opset: str, extras: bool, ...HUB_FLAGS },
  args({ values, positionals }) {
    const dir = modelDirArg(positionals, 1, 'export needs exactly one <model-dir>');
    if (!values.onnx) throw new UsageError('export needs --onnx <file.onnx>');
    return { dir, onnx: v.writableFile('--onnx', values.onnx), opset: intFlag(values, 'opset', 14, 17), extras: values.extras === true, hub: hubFlags(values) };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, a.hub);
    if (model.patched) await model.compile();
    const r = await exportOnnx(model, a.onnx, { opset: a.opset, extras: a.extras });
    console.log(`wrote ${r.path}: opset ${r.opset}, ${r.nodes} nodes, ${r.initializers} initializers, ${(r.bytes / 1e6).toFixed(1)} MB; inputs ${r.inputs.join(', ')} -> ${r.outputs.join(', ')}`);
    model.dispose();
  },
};
