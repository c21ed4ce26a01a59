/** `blockprune report <model-dir>`: parameters, per-layer shapes and densities, mask pictures. */
import { BertModel } from '../../model/model';
import { buildReport, formatReport } from '../../report/report';
import { writeMaskImages } from '../../report/mask-plots';
import * as v from '../../runtime/validate';
import type { HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { bool, deviceFlag, str } from '../flags';

export const reportCommand: Command<{ dir: string; device: string; images?: string; imagesArg?: string; json: boolean; hub: HubOptions }> = {
  name: 'report',
  synopsis: 'report <model-dir>',
  summary: 'parameters before/after, per-layer shapes and densities, mask pictures (--images DIR)',
  help: `Usage: blockprune report <model-dir|org/name> [--json] [--images DIR] [--device cpu] [--revision REV] [--offline]

Prints the parameter summary (total, embeddings, encoder, linear layers; reduction vs the dense model and vs
BERT-base 110M), the density (non-zero weights of the encoder's linear layers, masks when patched, over those
of the dense architecture: the figure info and train print), per layer the heads, FFN width and density, and
the shape table "[3072, 768] => [552, 768], intermediate.dense.weight". A checkpoint saved patched is said to
be, with its threshold; its heads and FFN units are then those its masks keep (alive in q, k and v).
--images DIR writes PNGs: one per encoder linear, masks.png (all layers) and density.png. --json prints the
same as JSON.

${HUB_HELP}`,
  flags: { json: bool, images: str, device: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    return {
      dir: modelDirArg(positionals, 1, 'report needs exactly one <model-dir>'),
      device: deviceFlag(values),
      images: values.images === undefined ? undefined : v.writableDirectory('--images', values.images),
      imagesArg: values.images as string | undefined,
      json: values.json === true,
      hub: hubFlags(values),
    };
  },
  async run(a) {
    const model = await BertModel.fromPretrained(a.dir, { device: a.device, ...a.hub });
    const report = await buildReport(model, { masks: true });
    const files = a.images ? await writeMaskImages(model, a.images) : [];
    if (a.json) console.log(JSON.stringify({ ...report, images: files }, null, 2));
    else {
      console.log(formatReport(report));
      if (files.length) console.log(`\nMask pictures: ${files.length} files in ${a.imagesArg} (masks.png, density.png, one per linear)`);
    }
    model.dispose();
  },
};
