/**
 * Encoder-decoder models (issue 18): BART (BartForConditionalGeneration, BartForSequenceClassification) and T5
 * (T5ForConditionalGeneration), as transformers 4.4.2 computes them (native/seq2seq.h; bart.cc, t5.cc). Loaded
 * from a local HF-layout directory; each call runs on the worker pool, one at a time per model.
 */
import { resolve } from 'node:path';
import { BlockpruneError } from '../runtime/errors';
import { native, NativeSeq2Seq, NativeSeq2SeqInfo, NativeSeq2SeqInputs, TensorData } from '../runtime/native';
import * as v from '../runtime/validate';

export type Seq2SeqInputs = NativeSeq2SeqInputs;
export type Seq2SeqInfo = NativeSeq2SeqInfo;

export interface Seq2SeqForwardOptions {
  /** Adds "encoder_hidden_states.{0..L}" and "decoder_hidden_states.{0..L}". */
  hiddenStates?: boolean;
  /** Adds "encoder_attentions.i", "decoder_attentions.i" and "cross_attentions.i" ([batch, heads, target, source]). */
  attentions?: boolean;
}

export class Seq2SeqModel {
  #handle: NativeSeq2Seq | undefined;

  private constructor(handle: NativeSeq2Seq) {
    this.#handle = handle;
  }

  /** The model of `dir` (config.json with model_type bart or t5, and its weights). */
  static async fromPretrained(dir: string, options: { device?: string } = {}): Promise<Seq2SeqModel> {
    v.string('dir', dir, { nonEmpty: true });
    const o = v.options('options', options, ['device']);
    if (o.device !== undefined) v.string('options.device', o.device, { nonEmpty: true });
    return new Seq2SeqModel(await native().loadSeq2Seq(resolve(dir), { device: options.device ?? 'cpu' }));
  }

  #live(): NativeSeq2Seq {
    if (!this.#handle) throw new BlockpruneError('E_DISPOSED', 'this model was disposed');
    return this.#handle;
  }

  /** Family, architecture, sizes and special token ids. */
  get info(): Seq2SeqInfo {
    return this.#live().info();
  }

  /**
   * One forward pass (eval mode): "logits" ([batch, target, vocab] for generation models, [batch, labels] for
   * classification), "loss" with labels, "encoder_last_hidden_state", and what `options` adds.
   */
  async forward(inputs: Seq2SeqInputs, options: Seq2SeqForwardOptions = {}): Promise<Record<string, TensorData>> {
    v.object('inputs', inputs);
    const o = v.options('options', options, ['hiddenStates', 'attentions']);
    for (const k of ['hiddenStates', 'attentions']) if (o[k] !== undefined) v.boolean(`options.${k}`, o[k]);
    return this.#live().forward(inputs, options);
  }

  /** Frees the native model now (a call in flight finishes first). */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = undefined;
  }
}
