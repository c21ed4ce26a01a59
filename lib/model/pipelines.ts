/**
 * HF-style pipelines over a local model directory (config.json, weights, tokenizer.json or vocab.txt):
 *
 *   const classify = await pipeline('text-classification', dir);
 *   await classify('a gripping film');            // { label: 'positive', score: 0.98 } (the model's id2label)
 *   await classify('a gripping film', { topK: 2 }); // the two best: [{ label, score }, { label, score }]
 *   await classify(['good', 'bad']);               // a batch: one result each
 *   await classify({ text: 'q', textPair: 'p' });  // a pair (or [['q', 'p']] in a batch)
 *
 *   const qa = await pipeline('question-answering', dir);
 *   await qa({ question, context });               // { answer, score, start, end }
 *   await qa({ question, context }, { topK: 3 });  // the three best answers (topK > 1: an array)
 *
 *   const summarize = await pipeline('summarization', dir);   // BART / T5 (generation-pipeline.ts)
 *   await summarize('a long text');                // { summary_text }; 'text2text-generation' gives generated_text
 *
 * The call signatures say these shapes: `(await classify('x')).label` compiles (ClassificationOutput, QAOutput).
 *
 * A pipeline is a function with the model and tokenizer attached; `dispose()` frees the model.
 */
import { resolve } from 'node:path';
import { HUB_OPTIONS, localModelPath, resolveModel, type HubOptions } from '../hub/hub';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import { BertModel, FromPretrainedOptions } from './model';
import { AutoTokenizer, hasTokenizerFiles, modelTypeIn } from '../tokenizer/auto-tokenizer';
import type { PreTrainedTokenizer, QuestionContextWindow } from '../tokenizer/tokenizer';
import * as v from '../runtime/validate';
import { checkQAOptions, QA_DEFAULTS, qaWindowOptions, type QAOptions } from './qa-options';
import { generationPipeline, type GenerationTask, type TextGenerationPipeline } from './generation-pipeline';
import { Seq2SeqModel } from './seq2seq';

/** A hub id (`org/name`) is found in the Hugging Face cache, or downloaded into it: see HubOptions. */
export interface PipelineOptions extends HubOptions {
  device?: string;
  /** Directory of tokenizer.json / vocab.txt when the model directory has neither. */
  tokenizer?: string;
  /** Sequences per forward pass (default 16). */
  batchSize?: number;
  /** Truncation length (default: the model's max_position_embeddings, at most 512). */
  maxLength?: number;
}

/** A text, or a pair as { text, textPair }; inside a batch a pair may also be [text, textPair]. */
export type ClassificationInput = string | { text: string; textPair?: string };
export type ClassificationBatchItem = ClassificationInput | [string, string];

export interface ClassificationResult {
  label: string;
  score: number;
}

export interface ClassifyOptions {
  /** Return the k best labels per input instead of the best one. */
  topK?: number;
}

export interface QAInput {
  question: string;
  context: string;
}

export interface QAResult {
  answer: string;
  score: number;
  /** Character offsets (UTF-16 units) of the answer in the context: context.slice(start, end) === answer. */
  start: number;
  end: number;
}

interface PipelineBase {
  readonly task: string;
  readonly model: BertModel;
  readonly tokenizer: PreTrainedTokenizer;
  dispose(): void;
}

/**
 * What one classified input gives for options of type O, as the pipeline answers at run time: the best label
 * (an object) without topK, the topK best (an array) with it; options whose topK may be undefined, either.
 */
export type ClassificationOutput<O extends ClassifyOptions = {}> = [O] extends [{ topK: number }]
  ? ClassificationResult[]
  : [O] extends [{ topK?: undefined }]
    ? ClassificationResult
    : ClassificationResult | ClassificationResult[];

/**
 * What one question gives for the type of `topK` (the pipeline infers K from the options: `{ topK: 3 }` is 3), as HF's QuestionAnsweringPipeline answers: one answer (an
 * object) for topK 1, the default; an array of the best for a larger topK. A topK known only as a `number`
 * (or one that may be undefined) could be either.
 */
export type QAOutput<K extends number | undefined = undefined> = [K] extends [1 | undefined]
  ? QAResult
  : 1 extends K
    ? QAResult | QAResult[]
    : undefined extends K
      ? QAResult | QAResult[]
      : QAResult[];

/**
 * One input gives one result, an array of inputs an array of results (HF's rule); each result's shape follows
 * whether the options give a topK (ClassificationOutput).
 */
export interface TextClassificationPipeline extends PipelineBase {
  <O extends ClassifyOptions = {}>(input: ClassificationInput, options?: O): Promise<ClassificationOutput<O>>;
  <O extends ClassifyOptions = {}>(inputs: ClassificationBatchItem[], options?: O): Promise<Array<ClassificationOutput<O>>>;
  readonly task: 'text-classification';
}

/** One { question, context } gives one result, an array of them an array; each result's shape follows topK (QAOutput). */
export interface QuestionAnsweringPipeline extends PipelineBase {
  <K extends number | undefined = undefined>(input: QAInput, options?: QAOptions & { topK?: K }): Promise<QAOutput<K>>;
  <K extends number | undefined = undefined>(inputs: QAInput[], options?: QAOptions & { topK?: K }): Promise<Array<QAOutput<K>>>;
  readonly task: 'question-answering';
}

/**
 * The tokenizer of a model directory (or of `tokenizerDir`): the family follows tokenizer_config.json's
 * tokenizer_class, else the model's config.json model_type, else the tokenizer files (AutoTokenizer); a BERT
 * tokenizer is a BertTokenizer. A hub id reads the cached snapshot (`hub`: its revision and cache folder);
 * this never downloads: pipeline() and fromPretrained() do.
 */
export function loadTokenizer(modelDir: string, tokenizerDir?: string, hub: Pick<HubOptions, 'revision' | 'cacheDir'> = {}): PreTrainedTokenizer {
  // The model's folder says its family; with a tokenizer folder given, a model not (yet) cached only loses that hint.
  let model: string | undefined;
  try {
    model = localModelPath(modelDir, hub);
  } catch (e) {
    if (tokenizerDir === undefined) throw e;
  }
  const dir = tokenizerDir !== undefined ? resolve(tokenizerDir) : model!;
  if (!hasTokenizerFiles(dir))
    throw new BlockpruneError(
      'E_FILE_NOT_FOUND',
      `no tokenizer in ${dir}: looked for tokenizer.json, vocab.txt and vocab.json + merges.txt (pass { tokenizer: <dir> } to use another)`,
    );
  const modelType = model !== undefined ? modelTypeIn(model) : undefined;
  return AutoTokenizer.fromDir(dir, { modelType: typeof modelType === 'string' && modelType !== '' ? modelType : undefined });
}

function softmax(row: Float32Array | number[]): number[] {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  const e = Array.from(row, (v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** transformers' task aliases: 'sentiment-analysis' is a text-classification pipeline. */
const TASK_ALIASES = { 'sentiment-analysis': 'text-classification' } as const;

export async function pipeline(task: 'text-classification' | 'sentiment-analysis', dir: string, options?: PipelineOptions): Promise<TextClassificationPipeline>;
export async function pipeline(task: 'question-answering', dir: string, options?: PipelineOptions): Promise<QuestionAnsweringPipeline>;
export async function pipeline(task: GenerationTask, dir: string, options?: PipelineOptions): Promise<TextGenerationPipeline>;
export async function pipeline(
  taskName: 'text-classification' | 'sentiment-analysis' | 'question-answering' | GenerationTask,
  dir: string,
  options: PipelineOptions = {},
): Promise<TextClassificationPipeline | QuestionAnsweringPipeline | TextGenerationPipeline> {
  const task = taskName === 'sentiment-analysis' ? TASK_ALIASES[taskName] : taskName;
  if (task !== 'text-classification' && task !== 'question-answering' && task !== 'summarization' && task !== 'text2text-generation')
    throw invalidArg('task', "'text-classification', 'sentiment-analysis', 'question-answering', 'summarization' or 'text2text-generation'", task);
  // Options and the model directory first: a missing model is named as such, not as a missing tokenizer.
  v.options('options', options, ['device', 'tokenizer', 'batchSize', 'maxLength', ...HUB_OPTIONS]);
  if (options.device !== undefined) v.string('options.device', options.device, { nonEmpty: true });
  if (options.tokenizer !== undefined) v.string('options.tokenizer', options.tokenizer, { nonEmpty: true });
  const batchSize = v.positiveInteger('options.batchSize', options.batchSize ?? 16);
  if (options.maxLength !== undefined) v.positiveInteger('options.maxLength', options.maxLength);
  const { revision, offline, token, cacheDir, onProgress } = options;
  // A hub id is resolved (downloaded when needed) once, then read as a directory.
  const local = await resolveModel(dir, { revision, offline, token, cacheDir, onProgress }, 'dir');
  const tokenizer = loadTokenizer(local, options.tokenizer);
  if (task === 'summarization' || task === 'text2text-generation')
    return generationPipeline(task, await Seq2SeqModel.fromPretrained(local, { device: options.device }), tokenizer, batchSize, options.maxLength);
  const loadOpts: FromPretrainedOptions = { device: options.device, task };
  const model = await BertModel.fromPretrained(local, loadOpts);
  if (model.dimensions.vocabSize < tokenizer.vocabSize) {
    const n = model.dimensions.vocabSize;
    model.dispose();
    throw new BlockpruneError('E_BAD_CONFIG', `the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${n}`);
  }
  const maxPositions = Math.min(512, model.dimensions.maxSequenceLength);
  // Longer inputs than the position table would index past it.
  const maxLength = options.maxLength ?? maxPositions;
  if (maxLength > maxPositions) {
    model.dispose();
    throw v.invalidParameterError('options.maxLength', `at most ${maxPositions} (the model's positions, capped at 512)`, maxLength, 'range');
  }
  const base = {
    model,
    tokenizer,
    dispose: () => model.dispose(),
  };
  if (task === 'text-classification') {
    const labels = model.labels;
    // A model with one token type (RoBERTa) behind a BERT tokenizer: the pair's type ids would be out of range.
    const oneTokenType = model.dimensions.typeVocabSize < 2;
    const run = async (input: ClassificationInput | ClassificationBatchItem[], opts: ClassifyOptions = {}) => {
      // As HF: an array is a batch; a pair is { text, textPair } or a [text, textPair] inside a batch.
      v.options('options', opts, ['topK']);
      const single = !Array.isArray(input);
      const items = (single ? [input] : input) as ClassificationBatchItem[];
      const topK = opts.topK === undefined ? undefined : v.positiveInteger('options.topK', opts.topK);
      const results: Array<ClassificationResult | ClassificationResult[]> = [];
      for (let i = 0; i < items.length; i += batchSize) {
        const chunk = items.slice(i, i + batchSize).map((x, j) => toBatchItem(x, i + j));
        const enc = tokenizer.encodeBatch(chunk, { maxLength, truncation: 'longest_first' });
        if (oneTokenType) enc.tokenTypeIds.fill(0);
        const out = await model.forward(enc);
        const logits = out.logits.data as Float32Array;
        const n = out.logits.shape[1];
        for (let r = 0; r < enc.batchSize; r++) {
          const row = logits.subarray(r * n, (r + 1) * n);
          const probs = n === 1 ? [1 / (1 + Math.exp(-row[0]))] : softmax(row);
          const ranked = probs.map((score, k) => ({ label: labels[k] ?? `LABEL_${k}`, score })).sort((a, b) => b.score - a.score);
          results.push(topK === undefined ? ranked[0] : ranked.slice(0, topK));
        }
      }
      return single ? results[0] : results;
    };
    return Object.assign(run, base, { task: 'text-classification' as const }) as TextClassificationPipeline;
  }

  const run = async (input: QAInput | QAInput[], opts: QAOptions = {}) => {
    checkQAOptions(opts);
    const single = !Array.isArray(input);
    const items = single ? [input] : input;
    const results: Array<QAResult | QAResult[]> = [];
    for (const [idx, item] of items.entries()) {
      if (typeof item !== 'object' || item === null || typeof item.question !== 'string' || typeof item.context !== 'string')
        throw invalidArg(`inputs[${idx}]`, 'an object { question: string, context: string }', item);
      results.push(await answer(model, tokenizer, item, opts, batchSize, maxLength));
    }
    return single ? results[0] : results;
  };
  return Object.assign(run, base, { task: 'question-answering' as const }) as QuestionAnsweringPipeline;
}

function toBatchItem(x: ClassificationBatchItem, i: number): string | [string, string] {
  if (typeof x === 'string') return x;
  if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
  if (x && typeof x === 'object' && !Array.isArray(x) && typeof x.text === 'string')
    return x.textPair === undefined ? x.text : [x.text, x.textPair];
  throw invalidArg(`inputs[${i}]`, 'a string, a [text, textPair] pair or { text, textPair }', x);
}

/**
 * HF QuestionAnsweringPipeline: windows over the context (max_seq_len, doc_stride), start/end softmax over
 * each window's tokens with non-context tokens masked, best span with start <= end < start + max_answer_len,
 * best over windows; the answer is the context's own characters from the first token's start to the last
 * token's end, so it is always an exact substring.
 */
async function answer(
  model: BertModel,
  tokenizer: PreTrainedTokenizer,
  input: QAInput,
  opts: QAOptions,
  batchSize: number,
  maxLength: number,
): Promise<QAResult | QAResult[]> {
  const windows = tokenizer.encodeQuestionContext(input.question, input.context, qaWindowOptions(opts, maxLength));
  return (await answerWindows(model, [{ context: input.context, windows }], opts, batchSize))[0];
}

/**
 * The best `capacity` distinct spans of one question, kept while windows are scored so that memory stays
 * O(capacity) whatever the context length (the old way, every span of every window as an object with its
 * answer string, then one sort, took ~150 bytes per span: 5,500 spans a 384-token window, 0.5 GB for 32
 * requests of 20,000 characters). Same result as sorting every span by score, stable (first found wins a
 * tie), and keeping the first occurrence of each span: a span seen again with a higher score moves up, one
 * dropped earlier comes back only if its new score beats the kept ones, which is when the full sort would
 * rank it there too.
 */
class BestSpans {
  readonly spans: Array<{ score: number; start: number; end: number }> = [];
  constructor(readonly capacity: number) {}

  offer(score: number, start: number, end: number): void {
    const kept = this.spans;
    // Not better than the last kept span: a tie goes to the span found first.
    if (kept.length >= this.capacity && !(score > kept[kept.length - 1].score)) return;
    const same = kept.findIndex((c) => c.start === start && c.end === end);
    if (same >= 0) {
      if (!(score > kept[same].score)) return;
      kept.splice(same, 1);
    }
    let at = kept.length;
    while (at > 0 && !(kept[at - 1].score >= score)) at--;
    kept.splice(at, 0, { score, start, end });
    if (kept.length > this.capacity) kept.pop();
  }
}

/**
 * Answers several questions from their context windows (tokenizer.encodeQuestionContext), the windows of
 * all of them sharing forward passes of up to `batchSize` windows: HF's scoring (softmax over the context
 * positions, spans up to maxAnswerLength tokens, the same span from overlapping windows counted once, the
 * empty answer from [CLS] with handleImpossibleAnswer). One result per question (an array when topK > 1).
 * The service (lib/serve/) batches requests through it. `onForward` is called before each forward.
 * Memory: one forward's inputs and outputs (`batchSize` windows) and the best topK spans per question.
 */
export async function answerWindows(
  model: BertModel,
  items: ReadonlyArray<{ context: string; windows: readonly QuestionContextWindow[] }>,
  opts: QAOptions,
  batchSize: number,
  onForward?: () => void,
): Promise<Array<QAResult | QAResult[]>> {
  checkQAOptions(opts);
  const topK = v.positiveInteger('options.topK', opts.topK ?? QA_DEFAULTS.topK);
  const maxAnswer = v.positiveInteger('options.maxAnswerLength', opts.maxAnswerLength ?? QA_DEFAULTS.maxAnswerLength);
  const best = items.map(() => new BestSpans(topK));
  const nullScore: number[] = items.map(() => 0);
  // Padding is the model's pad id (RoBERTa counts positions over the other ids); a model with one token type
  // (RoBERTa) gets none, whatever tokenizer made the windows.
  const { padTokenId, typeVocabSize } = model.dimensions;
  const all = items.flatMap((it, item) => it.windows.map((w) => ({ item, w })));
  for (let w0 = 0; w0 < all.length; w0 += batchSize) {
    const chunk = all.slice(w0, w0 + batchSize);
    const seqLen = Math.max(...chunk.map(({ w }) => w.inputIds.length));
    const B = chunk.length;
    const ids = new Int32Array(B * seqLen).fill(padTokenId);
    const mask = new Int32Array(B * seqLen);
    const types = new Int32Array(B * seqLen);
    chunk.forEach(({ w }, r) => {
      ids.set(w.inputIds, r * seqLen);
      mask.set(w.attentionMask, r * seqLen);
      if (typeVocabSize > 1) types.set(w.tokenTypeIds, r * seqLen);
    });
    onForward?.();
    const out = await model.forward({ inputIds: ids, attentionMask: mask, tokenTypeIds: types, batchSize: B, seqLen });
    const startAll = out.start_logits.data as Float32Array;
    const endAll = out.end_logits.data as Float32Array;
    chunk.forEach(({ item, w }, r) => {
      // Mask everything but the context (and [CLS] for the empty answer), as HF's p_mask does.
      const masked = (logits: Float32Array) =>
        Array.from(logits.subarray(r * seqLen, (r + 1) * seqLen), (v, i) =>
          (i >= w.contextStart && i < w.contextEnd) || (i === 0 && opts.handleImpossibleAnswer) ? v : -10000,
        );
      const ps = softmax(masked(startAll));
      const pe = softmax(masked(endAll));
      if (opts.handleImpossibleAnswer) nullScore[item] = Math.max(nullScore[item], ps[0] * pe[0]);
      for (let s = w.contextStart; s < w.contextEnd; s++) {
        const a = w.offsets[s];
        if (!a) continue;
        for (let e = s; e < Math.min(w.contextEnd, s + maxAnswer); e++) {
          const b = w.offsets[e];
          if (b) best[item].offer(ps[s] * pe[e], a[0], b[1]);
        }
      }
    });
  }
  return best.map(({ spans }, item) => {
    const context = items[item].context;
    const found: QAResult[] = spans.map((c) => ({ answer: context.slice(c.start, c.end), score: c.score, start: c.start, end: c.end }));
    if (opts.handleImpossibleAnswer) found.unshift({ answer: '', score: nullScore[item], start: 0, end: 0 });
    // Stable: the empty answer, first, wins a tie as it did.
    found.sort((x, y) => y.score - x.score);
    const top = found.slice(0, topK);
    if (top.length === 0) return topK === 1 ? { answer: '', score: 0, start: 0, end: 0 } : [];
    return topK === 1 ? top[0] : top;
  });
}
