/**
 * What pruning adds to Seq2SeqModel (issue 18, step 1): patch with a PruningConfig through the family's prunable
 * blocks (encoder self-attention, decoder self- and cross-attention, both FFNs: the 32 linears nn_pruning
 * patches in a 2+2-layer BART or T5), the mask threshold, and the masks. forward() then computes with W * M.
 * Declared on the class by module augmentation, installed when this module loads (lib/index.ts loads it).
 */
import { extendSeq2Seq, seq2seqInternals, type Seq2SeqModel } from '../model/seq2seq';
import { invalidArg } from '../runtime/errors';
import type { Seq2SeqCompactReport, TensorData } from '../runtime/native';
import * as v from '../runtime/validate';
import { PruningConfig } from './config';
import { patchReport, type PatchReport } from './model-pruning';

declare module '../model/seq2seq' {
  interface Seq2SeqModel {
    /**
     * Masks every attention block's q, k, v and output linears and every FFN pair as the config says (lm_head,
     * embeddings, T5's relative bias and a classification head stay dense). Once only: a second patch is
     * E_INVALID_ARG.
     */
    patch(config: PruningConfig): Promise<PatchReport>;
    /** True once patch() has succeeded (a model is patched only through it). */
    isPatched(): boolean;
    /** Sets the mask threshold every masked linear reads. */
    setThreshold(threshold: number): Promise<void>;
    /**
     * As BertModel.masks(): "mask.<linear>" (the weight's shape) and "bias_mask.<linear>" of every prunable
     * linear, from the scores at the current threshold when patched, else weight != 0.
     */
    masks(): Promise<Record<string, TensorData>>;
    /**
     * A smaller dense copy (this model is unchanged; a patched one is compiled on the copy at its threshold): in
     * every attention block (encoder self, decoder self, cross) the dead heads go (one stays), and with mode
     * 'dense' (default) the FFN units with an all-zero row or column go (one stays). Which heads are dead:
     * `deadHeads` 'exact' (default) those whose output is zero whatever they attend to (value rows, bias included,
     * or output columns all zero): the outputs equal the masked model's; 'reference' nn_pruning's rule (BERT's
     * compact()): a head with no non-zero weight in q, k or v, so also one that still attends with zero queries
     * or keys (uniformly, or by T5's position bias): smaller, and the outputs change by what those heads added.
     * The copy's config.json records the structure (encoder/decoder/cross_pruned_heads,
     * encoder/decoder_intermediate_sizes), so save() and fromPretrained() round-trip it; it keeps this model's
     * tokenizer files for save().
     */
    compact(mode?: 'dense' | 'heads', options?: { deadHeads?: 'exact' | 'reference' }): Promise<{ model: Seq2SeqModel; report: Seq2SeqCompactReport }>;
  }
}

export type { Seq2SeqCompactReport };

const { handle } = seq2seqInternals;
const patchedModels = new WeakSet<object>();

extendSeq2Seq({
  async patch(config: PruningConfig): Promise<PatchReport> {
    if (!(config instanceof PruningConfig)) throw invalidArg('config', 'a PruningConfig', config);
    const h = handle(this);
    const plan = config.plan(this.geometry());
    const report = patchReport(config, await h.patch(JSON.stringify(plan)));
    patchedModels.add(this);
    return report;
  },

  isPatched(): boolean {
    return patchedModels.has(this);
  },

  async setThreshold(threshold: number): Promise<void> {
    v.number('threshold', threshold);
    return handle(this).setThreshold(threshold);
  },

  async masks(): Promise<Record<string, TensorData>> {
    return handle(this).masks();
  },

  async compact(mode: 'dense' | 'heads' = 'dense', options: { deadHeads?: 'exact' | 'reference' } = {}): Promise<{ model: Seq2SeqModel; report: Seq2SeqCompactReport }> {
    v.oneOf('mode', mode, ['dense', 'heads'] as const);
    const o = v.options('options', options, ['deadHeads']);
    const rule = o.deadHeads === undefined ? 'exact' : v.oneOf('options.deadHeads', o.deadHeads, ['exact', 'reference'] as const);
    const { model, report } = await handle(this).compact(mode, rule);
    return { model: seq2seqInternals.wrap(model, this.sourceDir), report };
  },
});
