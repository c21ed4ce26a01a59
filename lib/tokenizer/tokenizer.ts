/**
 * PreTrainedTokenizer: one tokenizer class for every family (BERT, DistilBERT, RoBERTa, XLM-R), over the
 * `Tokenizer` class of `@huggingface/tokenizers` (tokenizers.js). What differs between families is data: the
 * model kind (text-tokenizer.ts: WordPiece, byte-level BPE, Unigram) and the special-token layout and token
 * types (family.ts). BertTokenizer is the BERT family's, kept with its constructor and `fromDir`.
 *
 * Loading: `AutoTokenizer.fromDir(dir)` (auto-tokenizer.ts) picks the family; `BertTokenizer.fromDir(dir)` reads
 * `dir/tokenizer.json` or builds it from `dir/vocab.txt` (tokenizer-json.ts). Both go through the same library
 * Tokenizer, so there is a single tokenization code path per model kind.
 *
 * Reference semantics: the slow tokenizers of transformers 4.4.2 (what the parity fixtures were made with):
 * `BertTokenizer` (see `Prenormalizer.prenormalize()` for where tokenizers.js differs and how it is fixed) and
 * `RobertaTokenizer` (see byte-level.ts).
 *
 * Special tokens, the pair layout, token types and truncation are done here (assemble.ts) rather than by the
 * library's post-processor, because truncation (HF `truncate_sequences`) has to act on the two sequences before
 * the special tokens are added.
 *
 * Character offsets (question answering) are JavaScript string indices, i.e. UTF-16 code units, everywhere:
 * `context.slice(start, end)` gives the original text of a token. A character outside the BMP (emoji, CJK
 * extension B, ...) therefore spans 2 units.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import * as v from '../runtime/validate';
import { is } from '../runtime/validate';
import { assembleIds, choice, ENCODE_OPTIONS } from './assemble';
import type { Encoded, EncodeOptions } from './assemble';
import { detectFamily, TOKENIZER_FAMILIES, tokenizerFamily } from './family';
import type { SpecialLayout, TokenizerFamily } from './family';
import type { ContextToken } from './offset-tokenizer';
import { checkQuestionContextOptions, questionContextWindows } from './question-context';
import type { QuestionContextOptions, QuestionContextWindow } from './question-context';
import { createTextTokenizer } from './text-tokenizer';
import type { TextTokenizer } from './text-tokenizer';
import { TokenizerError } from './tokenizer-error';
import { modelKindOf, prepareTokenizerJson, readTokenizerDir } from './tokenizer-json';
import type { BertTokenizerConfig } from './tokenizer-json';

// The tokenizer's public types live with the code that makes them; they are re-exported here so that
// `../tokenizer/tokenizer` stays the one import for users of the tokenizer.
export { TokenizerError } from './tokenizer-error';
export type { TokenizerErrorCode } from './tokenizer-error';
export type { Encoded, EncodeOptions, TruncationStrategy } from './assemble';
export type { QuestionContextOptions, QuestionContextWindow } from './question-context';
export { buildBertTokenizerJson, buildRobertaTokenizerJson } from './tokenizer-json';
export type { BertTokenizerConfig } from './tokenizer-json';
export { TOKENIZER_FAMILIES } from './family';
export type { TokenizerFamily, TokenizerModelKind } from './family';

/** HF's `padding`: `true` is 'longest' (as in transformers), false pads nothing. */
export type PaddingStrategy = 'longest' | 'max_length' | boolean;

export interface BatchEncodeOptions extends EncodeOptions {
  /**
   * 'longest' or true (default): pad to the longest row; 'max_length': pad to `maxLength`; false: no padding,
   * so the rows must be of equal length.
   */
  padding?: PaddingStrategy;
}

export type BatchItem = string | [string, string];

export interface BatchEncoded {
  /** Row-major [batchSize, seqLen]. Padding uses `padId` (0 for BERT, 1 for RoBERTa). */
  inputIds: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  attentionMask: Int32Array;
  /** 0 on padding (and everywhere for the families with one token type). */
  tokenTypeIds: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Unpadded length of each row. */
  lengths: number[];
}

export interface TokenizedWithOffsets {
  ids: number[];
  tokens: string[];
  /** [start, end) in UTF-16 code units of the original text, one per token. */
  offsets: Array<[number, number]>;
}

/** Text that goes through every stage (specials, non-ASCII, CJK, punctuation, a long word) at load time. */
const PROBE_TEXT = 'Hello, [CLS] wörld! 中文 Ünïcödé … 😀 tokenization';

const PADDINGS: readonly unknown[] = ['longest', 'max_length', true, false];

export interface PreTrainedTokenizerOptions {
  /** The family (config.json's model_type, or a TOKENIZER_FAMILIES entry); default: the one the model kind implies. */
  family?: string | TokenizerFamily;
  /** A parsed tokenizer_config.json: special token names, do_lower_case, model_max_length ... */
  config?: BertTokenizerConfig;
  /** Where the tokenizer came from (named in errors). */
  source?: string;
}

/** HF writes this (1e30 and the like) for "no limit" as model_max_length. */
const NO_MAX_LENGTH = 1e9;

export class PreTrainedTokenizer {
  /** The family's name: 'bert', 'distilbert', 'roberta' or 'xlm-roberta'. */
  readonly family: string;
  /** Number of ids (max id + 1), i.e. the embedding rows needed. */
  readonly vocabSize: number;
  /** The id that starts every sequence ([CLS], <s>); null for T5, whose sequences have no start token. */
  readonly clsId: number | null;
  /** The separator ([SEP], </s>). */
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maskId: number | undefined;
  readonly doLowerCase: boolean;
  /** tokenizer_config.json's model_max_length, when it sets a real limit. */
  readonly modelMaxLength: number | undefined;

  private readonly tk: Tokenizer;
  private readonly text: TextTokenizer;
  private readonly layout: SpecialLayout;

  /** The token type of a pair's second sequence: 1 for BERT; 0 for families with one token type (RoBERTa) or none. */
  get secondTypeId(): 0 | 1 {
    return this.layout.secondTypeId;
  }
  /** The context of the last encodeQuestionContext call: the questions of a paragraph share it. */
  private lastContext: { text: string; tokens: ContextToken[] } | null = null;

  /** @param tokenizerJson a parsed tokenizer.json object. */
  constructor(tokenizerJson: Record<string, unknown>, options: PreTrainedTokenizerOptions = {}) {
    const o = v.options('options', options, ['family', 'config', 'source']);
    const source = o.source === undefined ? 'tokenizer.json' : v.string('options.source', o.source);
    const config = o.config === undefined ? {} : (v.object('options.config', o.config) as BertTokenizerConfig);
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson)) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: expected a JSON object`);
    }
    // A family is an entry of the table (by name, or the entry itself), never an ad hoc object.
    const names = Object.keys(TOKENIZER_FAMILIES);
    const familyName = is.object(o.family) ? v.oneOf('options.family.name', o.family.name, names) : o.family;
    const family: TokenizerFamily =
      familyName === undefined
        ? detectFamily({ modelKind: modelKindOf(tokenizerJson, source), source })
        : tokenizerFamily(v.oneOf('options.family', familyName, names));
    this.family = family.name;
    const prepared = prepareTokenizerJson(tokenizerJson, config, source, family.model, family.specials);
    try {
      this.tk = new Tokenizer(prepared.json, config);
    } catch (e) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: ${(e as Error).message}`);
    }
    const model = this.tk.model;
    if (!model) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: tokenizers.js made no model of it`);

    const specials = prepared.specials;
    const need = (name: string, what: string): number => {
      const id = this.tk.token_to_id(name);
      if (id === undefined) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: ${what} token ${name} is not in the vocabulary`);
      return id;
    };
    this.unkId = need(specials.unk, 'unk');
    this.clsId = specials.cls === '' ? null : need(specials.cls, 'cls');
    this.sepId = need(specials.sep, 'sep');
    this.padId = this.tk.token_to_id(specials.pad) ?? 0;
    this.maskId = this.tk.token_to_id(specials.mask);
    this.layout = { clsId: this.clsId, sepId: this.sepId, pairSeparators: family.pairSeparators, secondTypeId: family.secondTypeId };
    this.text = createTextTokenizer(this.tk, model, prepared, this.unkId, source);
    // The model's vocab (shared by the WordPiece cache) holds the added tokens too.
    this.vocabSize = model.vocab.length;
    this.doLowerCase = this.text.doLowerCase;
    const mml = config.model_max_length;
    this.modelMaxLength = typeof mml === 'number' && Number.isInteger(mml) && mml > 0 && mml < NO_MAX_LENGTH ? mml : undefined;

    // A tokenizer that loads must encode: run the code paths once on a probe text, so that a file the library
    // accepts but cannot use (e.g. a post_processor of the wrong shape, an added token too long for a
    // RegExp) fails here, with its name and a code, instead of with a TypeError at the first encode().
    try {
      this.encode(PROBE_TEXT, PROBE_TEXT);
      this.tokenizeWithOffsets(PROBE_TEXT);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: this tokenizer cannot encode text: ${msg.length > 200 ? msg.slice(0, 200) + '…' : msg}`);
    }
  }

  tokenToId(token: string): number | undefined {
    return this.tk.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tk.id_to_token(id);
  }

  /**
   * The text of token ids (HF `decode`): the tokenizer's decoder (byte-level BPE bytes back to text, WordPiece's
   * `##` joined, Metaspace's `▁` as spaces); `skipSpecialTokens` drops the special tokens (`<s>`, `</s>`,
   * `<pad>`, `[CLS]` ...), as generation pipelines do. Ids outside the vocabulary are E_INVALID_ARG.
   */
  decode(ids: ArrayLike<number | bigint>, options: { skipSpecialTokens?: boolean } = {}): string {
    const o = v.options('options', options, ['skipSpecialTokens']);
    if (o.skipSpecialTokens !== undefined) v.boolean('options.skipSpecialTokens', o.skipSpecialTokens);
    const list = Array.from(ids as ArrayLike<number>, (x, i) => {
      const id = Number(x);
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError('E_INVALID_ARG', `decode: ids[${i}] = ${String(x)} is not a token id (0..${this.vocabSize - 1})`);
      return id;
    });
    return this.tk.decode(list, { skip_special_tokens: o.skipSpecialTokens === true });
  }

  // -------------------------------------------------------------------------------------------------------
  // Encoding
  // -------------------------------------------------------------------------------------------------------

  /** Token ids of `text` without special tokens. */
  encodeText(text: string): number[] {
    return this.text.ids(v.string('text', text));
  }

  /** The model's tokens of `text` without special tokens (like HF `tokenize`): WordPieces, byte-level BPE pieces... */
  tokenize(text: string): string[] {
    return this.text.tokens(v.string('text', text));
  }

  /**
   * Encodes a sequence or a pair like HF `tok(text, pair, truncation=..., max_length=...)`.
   * An empty-string pair is a real (empty) second segment: `[CLS] a [SEP] [SEP]`.
   */
  encode(text: string, pair?: string | null, opts: EncodeOptions = {}): Encoded {
    v.options('opts', opts, ENCODE_OPTIONS);
    const a = this.encodeText(text);
    const b = pair === undefined || pair === null ? null : this.encodeText(v.string('pair', pair));
    return this.assemble(a, b, opts);
  }

  /** Like `encode`, from token ids that have no special tokens yet. */
  assemble(idsA: number[], idsB: number[] | null, opts: EncodeOptions = {}): Encoded {
    return assembleIds(idsA, idsB, opts, this.layout);
  }

  /**
   * Encodes a batch into flat row-major Int32Arrays [batchSize, seqLen].
   * Padding (pad id, attention 0, token type 0) goes to the longest row by default.
   */
  encodeBatch(items: BatchItem[], opts: BatchEncodeOptions = {}): BatchEncoded {
    v.options('opts', opts, [...ENCODE_OPTIONS, 'padding']);
    if (!Array.isArray(items)) throw v.invalidParameterError('items', 'an array of strings or [string, string] pairs', items);
    const chosen: PaddingStrategy = opts.padding === undefined ? 'longest' : choice('opts.padding', opts.padding, PADDINGS);
    const padding = chosen === true ? 'longest' : chosen;
    if (padding === 'max_length' && opts.maxLength === undefined) {
      throw new TokenizerError('E_INVALID_ARG', "padding 'max_length' needs maxLength");
    }
    const rows: Encoded[] = items.map((it, i) => {
      if (typeof it === 'string') return this.assemble(this.encodeText(it), null, opts);
      if (Array.isArray(it) && it.length === 2 && typeof it[0] === 'string' && typeof it[1] === 'string') {
        return this.assemble(this.encodeText(it[0]), this.encodeText(it[1]), opts);
      }
      throw new TokenizerError('E_INVALID_ARG', `batch item ${i} must be a string or a [string, string] pair`);
    });
    const lengths = rows.map((r) => r.inputIds.length);
    const longest = lengths.reduce((m, x) => Math.max(m, x), 0);
    let seqLen: number;
    if (padding === 'max_length') seqLen = opts.maxLength as number;
    else if (padding === 'longest') seqLen = longest;
    else {
      if (lengths.some((l) => l !== longest)) {
        throw new TokenizerError('E_INVALID_ARG', `padding: false needs rows of equal length (these have ${Math.min(...lengths)} to ${longest} tokens); use padding: true or 'longest'`);
      }
      seqLen = longest;
    }
    if (longest > seqLen) {
      throw new TokenizerError('E_INVALID_ARG', `a row has ${longest} tokens, more than maxLength ${seqLen}; enable truncation`);
    }
    const batchSize = rows.length;
    const inputIds = new Int32Array(batchSize * seqLen);
    const attentionMask = new Int32Array(batchSize * seqLen);
    const tokenTypeIds = new Int32Array(batchSize * seqLen);
    if (this.padId !== 0) inputIds.fill(this.padId);
    for (let r = 0; r < batchSize; r++) {
      const row = rows[r];
      const base = r * seqLen;
      inputIds.set(row.inputIds, base);
      attentionMask.fill(1, base, base + row.inputIds.length);
      tokenTypeIds.set(row.tokenTypeIds, base);
    }
    return { inputIds, attentionMask, tokenTypeIds, batchSize, seqLen, lengths };
  }

  // -------------------------------------------------------------------------------------------------------
  // Offsets and question answering
  // -------------------------------------------------------------------------------------------------------

  /**
   * Tokenizes `text` (no special tokens) with the [start, end) span of the original text behind every token
   * (UTF-16 code units). The ids equal `encodeText(text)`.
   *
   * Within a word, pieces get exact sub-spans (e.g. "Playing" -> play [0,4), ##ing [4,7); "Ångström" with a
   * precomposed Å keeps exact spans too). Where that cannot be established, every piece of the word gets the
   * whole word's span (see OffsetTokenizer).
   */
  tokenizeWithOffsets(text: string): TokenizedWithOffsets {
    const toks = this.text.withOffsets(v.string('text', text));
    return {
      ids: toks.map((t) => t.id),
      tokens: toks.map((t) => t.token),
      offsets: toks.map((t) => [t.start, t.end] as [number, number]),
    };
  }

  /**
   * Sliding windows over (question, context) like HF `tok(question, context, truncation='only_second',
   * max_length=maxLength, stride=docStride, return_overflowing_tokens=True, return_offsets_mapping=True)`:
   * every window is `[CLS] question [SEP] context-slice [SEP]`, at most `maxLength` long, and consecutive
   * windows share `docStride` context tokens. Offsets are UTF-16 spans in the original context.
   */
  encodeQuestionContext(question: string, context: string, opts: QuestionContextOptions): QuestionContextWindow[] {
    v.string('question', question);
    v.string('context', context);
    const o = checkQuestionContextOptions(opts);
    const contextTokens = (): ContextToken[] => {
      if (this.lastContext && this.lastContext.text === context) return this.lastContext.tokens;
      const tokens = this.text.withOffsets(context);
      this.lastContext = { text: context, tokens };
      return tokens;
    };
    return questionContextWindows(this.encodeText(question), contextTokens, o, this.layout);
  }
}

/** The BERT family's tokenizer (WordPiece), as before the families: same constructor, same `fromDir`. */
export class BertTokenizer extends PreTrainedTokenizer {
  /**
   * @param tokenizerJson a parsed tokenizer.json object (WordPiece model).
   * @param config a parsed tokenizer_config.json object (optional). `do_lower_case`, `strip_accents` and
   *   `tokenize_chinese_chars` override the BertNormalizer settings, as BertTokenizerFast does.
   */
  constructor(tokenizerJson: Record<string, unknown>, config: BertTokenizerConfig = {}, source = 'tokenizer.json') {
    super(tokenizerJson, { family: TOKENIZER_FAMILIES.bert, config, source });
  }

  /**
   * Loads `dir/tokenizer.json` (+ `dir/tokenizer_config.json` if present), or builds the same object from
   * `dir/vocab.txt`. For any family, use `AutoTokenizer.fromDir`.
   */
  static fromDir(dir: string): BertTokenizer {
    const { json, config, source } = readTokenizerDir(dir);
    return new BertTokenizer(json, config, source);
  }
}
