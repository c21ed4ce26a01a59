/**
 * The text-to-text pipelines over an encoder-decoder model (issue 18), as transformers' SummarizationPipeline
 * and Text2TextGenerationPipeline (and transformers.js) give them:
 *
 *   const summarize = await pipeline('summarization', dir);
 *   await summarize('a long text ...');                    // { summary_text }
 *   await summarize(['one', 'two'], { numBeams: 4 });      // a batch: one result each
 *   for await (const piece of summarize.stream('text')) process.stdout.write(piece);   // text as it is generated
 *
 * config.json's `task_specific_params[task]` (T5's "summarize: " prefix, BART's lengths and beams) are the
 * defaults under the call's own generation options, as in transformers.
 */
import { BlockpruneError, invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';
import type { PreTrainedTokenizer } from '../tokenizer/tokenizer';
import { Seq2SeqModel, type GenerateOptions } from './seq2seq';

export type GenerationTask = 'summarization' | 'text2text-generation';

/** What each input gives: `summary_text` (summarization) or `generated_text`, HF's names. */
export type GenerationResult = { summary_text: string } | { generated_text: string };

export interface TextGenerationPipeline {
  (input: string, options?: GenerateOptions): Promise<GenerationResult>;
  (inputs: string[], options?: GenerateOptions): Promise<GenerationResult[]>;
  /** The generated text of one input, piece by piece as greedy search produces it (numBeams 1). */
  stream(input: string, options?: GenerateOptions): AsyncGenerator<string>;
  readonly task: GenerationTask;
  readonly model: Seq2SeqModel;
  readonly tokenizer: PreTrainedTokenizer;
  dispose(): void;
}

/** The generation options a config's task_specific_params entry may set (transformers' names). */
export const TASK_PARAMS: Record<string, keyof GenerateOptions> = {
  max_length: 'maxLength',
  min_length: 'minLength',
  num_beams: 'numBeams',
  length_penalty: 'lengthPenalty',
  early_stopping: 'earlyStopping',
  no_repeat_ngram_size: 'noRepeatNgramSize',
};

/** The task's prefix and default generation options from config.json's task_specific_params. */
export function taskDefaults(config: Record<string, unknown>, task: GenerationTask): { prefix: string; options: GenerateOptions } {
  const all = config.task_specific_params;
  const p = all && typeof all === 'object' ? (all as Record<string, unknown>)[task] : undefined;
  if (!p || typeof p !== 'object') return { prefix: '', options: {} };
  const params = p as Record<string, unknown>;
  const options: Record<string, unknown> = {};
  for (const [hf, ours] of Object.entries(TASK_PARAMS)) if (params[hf] !== undefined) options[ours] = params[hf];
  return { prefix: typeof params.prefix === 'string' ? params.prefix : '', options: options as GenerateOptions };
}

/**
 * The pipeline over a loaded model and tokenizer (pipelines.ts loads them). `maxLength`: the source's truncation
 * length (default: BART's positions, else 512).
 */
export function generationPipeline(task: GenerationTask, model: Seq2SeqModel, tokenizer: PreTrainedTokenizer, batchSize: number, maxLength?: number): TextGenerationPipeline {
  const info = model.info;
  if (info.architecture.endsWith('ForSequenceClassification')) {
    model.dispose();
    throw new BlockpruneError('E_BAD_CONFIG', `a ${info.architecture} does not generate text: ${task} needs a ...ForConditionalGeneration checkpoint`);
  }
  if (tokenizer.vocabSize > info.vocabSize) {
    model.dispose();
    throw new BlockpruneError('E_BAD_CONFIG', `the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${info.vocabSize}`);
  }
  const config = JSON.parse(info.config) as Record<string, unknown>;
  const positions = typeof config.max_position_embeddings === 'number' ? config.max_position_embeddings : 512;
  const sourceMax = maxLength ?? Math.min(512, positions);
  if (sourceMax > positions) {
    model.dispose();
    throw v.invalidParameterError('options.maxLength', `at most ${positions} (the model's positions)`, sourceMax, 'range');
  }
  const defaults = taskDefaults(config, task);
  const key = task === 'summarization' ? 'summary_text' : 'generated_text';
  const encode = (texts: string[]) => {
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw invalidArg(`inputs[${i}]`, 'a string', t);
    });
    const enc = tokenizer.encodeBatch(
      texts.map((t) => defaults.prefix + t),
      { maxLength: sourceMax, truncation: 'longest_first' },
    );
    return { inputIds: enc.inputIds, attentionMask: enc.attentionMask, batchSize: enc.batchSize, seqLen: enc.seqLen };
  };
  const run = async (input: string | string[], options: GenerateOptions = {}) => {
    const single = !Array.isArray(input);
    const texts = single ? [input] : input;
    const opts = { ...defaults.options, ...v.object('options', options) } as GenerateOptions;
    const perInput = opts.numReturnSequences ?? 1;
    const results: GenerationResult[] = [];
    for (let i = 0; i < texts.length; i += batchSize) {
      const r = await model.generate(encode(texts.slice(i, i + batchSize)), opts);
      const [rows, L] = r.sequences.shape;
      const ids = r.sequences.data as BigInt64Array;
      for (let row = 0; row < rows; row++) results.push({ [key]: tokenizer.decode(ids.subarray(row * L, (row + 1) * L), { skipSpecialTokens: true }) } as GenerationResult);
    }
    // Several sequences per input (numReturnSequences): a batch gives them in input order, as HF.
    if (single) return perInput === 1 ? results[0] : results;
    return results;
  };
  async function* stream(input: string, options: GenerateOptions = {}): AsyncGenerator<string> {
    if (typeof input !== 'string') throw invalidArg('input', 'a string', input);
    const opts = { ...defaults.options, ...v.object('options', options), numBeams: 1 } as GenerateOptions;
    // Each step's text is the decoded ids so far: a byte-level piece may complete a character only with the next one.
    const ids: bigint[] = [];
    let sent = '';
    for await (const tokens of model.stream(encode([input]), opts)) {
      ids.push(tokens[0]);
      const text = tokenizer.decode(ids, { skipSpecialTokens: true });
      if (text.startsWith(sent) && text.length > sent.length && !text.endsWith('\uFFFD')) {
        yield text.slice(sent.length);
        sent = text;
      }
    }
    const final = tokenizer.decode(ids, { skipSpecialTokens: true });
    if (final.length > sent.length) yield final.slice(sent.length);
  }
  return Object.assign(run, { task, model, tokenizer, stream, dispose: () => model.dispose() }) as TextGenerationPipeline;
}
