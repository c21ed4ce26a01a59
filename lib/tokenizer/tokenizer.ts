/**
 * BERT WordPiece tokenizer for blockprune.
 *
 * Loading: `BertTokenizer.fromDir(dir)` reads `dir/tokenizer.json` (HF fast-tokenizer file) or, when only
 * `dir/vocab.txt` exists, builds the equivalent tokenizer.json object in memory. Both go through the same
 * `Tokenizer` class of `@huggingface/tokenizers` (tokenizers.js), so there is a single tokenization code path.
 *
 * Reference semantics: the slow `BertTokenizer` of transformers 4.4.2 (what the parity fixtures were made
 * with). tokenizers.js agrees with it except for the cases listed at `prenormalize()`, which this wrapper
 * fixes by rewriting the text before handing it to tokenizers.js.
 *
 * Special tokens, the `[CLS] a [SEP] b [SEP]` layout, token types and truncation are done here rather than
 * by the library's post-processor, because truncation (HF `truncate_sequences`) has to act on the two
 * sequences before the special tokens are added.
 *
 * Character offsets (question answering) are JavaScript string indices, i.e. UTF-16 code units, everywhere:
 * `context.slice(start, end)` gives the original text of a token. A character outside the BMP (emoji, CJK
 * extension B, ...) therefore spans 2 units.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import * as v from '../runtime/validate';

// ---------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------

export type TokenizerErrorCode = 'E_FILE_NOT_FOUND' | 'E_BAD_TOKENIZER' | 'E_INVALID_ARG';

/** Error thrown by this module; `code` says what went wrong. */
export class TokenizerError extends Error {
  readonly code: TokenizerErrorCode;
  constructor(code: TokenizerErrorCode, message: string) {
    super(message);
    this.name = 'TokenizerError';
    this.code = code;
  }
}

export type TruncationStrategy = 'only_second' | 'longest_first' | 'only_first' | false;

export interface EncodeOptions {
  /** Maximum total length including special tokens. */
  maxLength?: number;
  /** Default: 'longest_first' when `maxLength` is given, otherwise no truncation. */
  truncation?: TruncationStrategy;
  /** Add [CLS]/[SEP] (default true). */
  addSpecialTokens?: boolean;
}

export interface Encoded {
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

export type PaddingStrategy = 'longest' | 'max_length' | false;

export interface BatchEncodeOptions extends EncodeOptions {
  /** 'longest' (default): pad to the longest row; 'max_length': pad to `maxLength`; false: rows must be equal. */
  padding?: PaddingStrategy;
}

export type BatchItem = string | [string, string];

export interface BatchEncoded {
  /** Row-major [batchSize, seqLen]. Padding uses `padId` (0 for BERT). */
  inputIds: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  attentionMask: Int32Array;
  /** 0 on padding. */
  tokenTypeIds: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Unpadded length of each row. */
  lengths: number[];
}

export interface QuestionContextOptions {
  /** Maximum window length including [CLS], the question, two [SEP] and the context slice. */
  maxLength: number;
  /** Number of context tokens shared by consecutive windows (HF `stride`). */
  docStride: number;
  /** If given, question tokens beyond this count are dropped (as in the original BERT run_squad). */
  maxQuestionLength?: number;
}

export interface QuestionContextWindow extends Encoded {
  /** Index (in this window) of the first context token. */
  contextStart: number;
  /** Index (in this window) one past the last context token. */
  contextEnd: number;
  /** Index of this window's first context token in the full tokenized context. */
  contextTokenOffset: number;
  /**
   * For each position in the window: the [start, end) span, in UTF-16 code units, of the ORIGINAL context
   * string that produced the token; `null` for special tokens and question tokens.
   */
  offsets: Array<[number, number] | null>;
}

export interface TokenizedWithOffsets {
  ids: number[];
  tokens: string[];
  /** [start, end) in UTF-16 code units of the original text, one per token. */
  offsets: Array<[number, number]>;
}

export interface BertTokenizerConfig {
  do_lower_case?: boolean;
  strip_accents?: boolean | null;
  tokenize_chinese_chars?: boolean;
  unk_token?: string | { content: string };
  cls_token?: string | { content: string };
  sep_token?: string | { content: string };
  pad_token?: string | { content: string };
  mask_token?: string | { content: string };
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------------------
// Character classes (BERT BasicTokenizer semantics)
// ---------------------------------------------------------------------------------------------------------

/** Characters BERT's `_clean_text` drops: NUL, U+FFFD and category C* except \t \n \r. */
const REMOVED_CHAR_RE = /^(?:[\0\uFFFD]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}])$/u;
const REMOVED_CHARS_G = /[\0\uFFFD]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}]/gu;
/** BERT `_is_punctuation`: ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*. */
const PUNCT_RE = /^[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]$/u;
const WHITESPACE_RE = /^\s$/;
/** CJK blocks outside the BMP (BERT `_is_chinese_char`); tokenizers.js only checks UTF-16 units. */
const ASTRAL_CJK_G = /[\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu;
/** Text made only of these needs no pre-normalization. */
const PLAIN_TEXT_RE = /^[\t\n\r\x20-\x7e]*$/;
const ASCII_WORD_RE = /^[\x21-\x7e]*$/;

function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function tokenName(v: unknown, dflt: string): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return dflt;
}

function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TokenizerError('E_BAD_TOKENIZER', `cannot read ${file}: ${err.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError('E_BAD_TOKENIZER', `invalid JSON in ${file}: ${(e as Error).message}`);
  }
}

function isTokenId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function describeJson(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 60) + '…' : s;
}

/** Text that goes through every stage (specials, non-ASCII, CJK, punctuation, a long word) at load time. */
const PROBE_TEXT = 'Hello, [CLS] wörld! 中文 Ünïcödé … 😀 tokenization';

const ENCODE_OPTIONS = ['maxLength', 'truncation', 'addSpecialTokens'] as const;
const TRUNCATIONS: readonly unknown[] = ['only_second', 'longest_first', 'only_first', false];
const PADDINGS: readonly unknown[] = ['longest', 'max_length', false];

/** `value` when it is one of `values` (which may hold `false`, so validate's oneOf does not fit). */
function choice<T>(name: string, value: unknown, values: readonly unknown[]): T {
  if (!values.includes(value)) throw v.invalidParameterError(name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, value, typeof value === 'string' ? 'range' : 'type');
  return value as T;
}

// Minimal views of tokenizers.js internals we use (public properties of its Tokenizer class).
interface LibNormalizer {
  normalize(text: string): string;
}
interface LibPreTokenizer {
  pre_tokenize_text(text: string, options?: unknown): string[];
}
interface LibModel {
  encode(tokens: string[]): string[];
  tokens_to_ids: Map<string, number>;
  vocab: string[];
  unk_token?: string;
  unk_token_id?: number;
}

interface SpecialNames {
  unk: string;
  cls: string;
  sep: string;
  pad: string;
  mask: string;
}

interface ContextToken {
  id: number;
  token: string;
  start: number;
  end: number;
}

// ---------------------------------------------------------------------------------------------------------
// tokenizer.json construction from vocab.txt
// ---------------------------------------------------------------------------------------------------------

/**
 * Reads vocab.txt like transformers' `load_vocab`: one token per line, id = line index, a repeated token keeps
 * its last id. Python reads with universal newlines, so a trailing \r is dropped as well.
 */
function readVocab(file: string): Record<string, number> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError('E_BAD_TOKENIZER', `cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  for (let i = 0; i < lines.length; i++) {
    let t = lines[i];
    if (t.endsWith('\r')) t = t.slice(0, -1);
    vocab[t] = i;
  }
  if (lines.length === 0) throw new TokenizerError('E_BAD_TOKENIZER', `empty vocabulary in ${file}`);
  return vocab;
}

/** The tokenizer.json that HF's BertTokenizerFast converter writes for a vocab.txt. */
export function buildBertTokenizerJson(
  vocab: Record<string, number>,
  opts: { lowercase?: boolean; stripAccents?: boolean | null; handleChineseChars?: boolean; specials?: Partial<SpecialNames> } = {},
): Record<string, unknown> {
  const sp: SpecialNames = {
    unk: opts.specials?.unk ?? '[UNK]',
    cls: opts.specials?.cls ?? '[CLS]',
    sep: opts.specials?.sep ?? '[SEP]',
    pad: opts.specials?.pad ?? '[PAD]',
    mask: opts.specials?.mask ?? '[MASK]',
  };
  const added: Array<Record<string, unknown>> = [];
  for (const name of [sp.pad, sp.unk, sp.cls, sp.sep, sp.mask]) {
    const id = vocab[name];
    if (id === undefined) continue;
    added.push({ id, content: name, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  }
  added.sort((a, b) => (a.id as number) - (b.id as number));
  const clsId = vocab[sp.cls];
  const sepId = vocab[sp.sep];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: opts.handleChineseChars ?? true,
      strip_accents: opts.stripAccents ?? null,
      lowercase: opts.lowercase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: sp.cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sp.sep, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: sp.cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sp.sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: sp.sep, type_id: 1 } },
      ],
      special_tokens: {
        [sp.cls]: { id: sp.cls, ids: [clsId], tokens: [sp.cls] },
        [sp.sep]: { id: sp.sep, ids: [sepId], tokens: [sp.sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: sp.unk,
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// BertTokenizer
// ---------------------------------------------------------------------------------------------------------

export class BertTokenizer {
  /** Number of ids (max id + 1), i.e. the embedding rows needed. */
  readonly vocabSize: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maskId: number | undefined;
  readonly doLowerCase: boolean;

  private readonly tk: Tokenizer;
  private readonly normalizer: LibNormalizer | null;
  private readonly preTokenizer: LibPreTokenizer | null;
  private readonly model: LibModel;
  private readonly unkToken: string;
  private readonly cleanText: boolean;
  private readonly handleChinese: boolean;
  private readonly stripAccents: boolean;
  /** Raw-text special tokens (added tokens with normalized=false), longest first. */
  private readonly specialRe: RegExp | null;
  private readonly specialSet: Set<string>;
  private lastContext: { text: string; tokens: ContextToken[] } | null = null;

  /**
   * @param tokenizerJson a parsed tokenizer.json object (WordPiece model).
   * @param config a parsed tokenizer_config.json object (optional). `do_lower_case`, `strip_accents` and
   *   `tokenize_chinese_chars` override the BertNormalizer settings, as BertTokenizerFast does.
   */
  constructor(tokenizerJson: Record<string, unknown>, config: BertTokenizerConfig = {}, source = 'tokenizer.json') {
    const tj = { ...tokenizerJson };
    const norm = tj.normalizer && typeof tj.normalizer === 'object' ? { ...(tj.normalizer as Record<string, unknown>) } : null;
    if (norm && norm.type === 'BertNormalizer') {
      if (typeof config.do_lower_case === 'boolean') norm.lowercase = config.do_lower_case;
      if (config.strip_accents !== undefined) norm.strip_accents = config.strip_accents;
      if (typeof config.tokenize_chinese_chars === 'boolean') norm.handle_chinese_chars = config.tokenize_chinese_chars;
      tj.normalizer = norm;
    }
    const model = tj.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || !model.vocab || typeof model.vocab !== 'object' || Array.isArray(model.vocab)) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: expected a WordPiece model with a vocab object`);
    }
    if (model.type !== undefined && model.type !== 'WordPiece') {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model type ${String(model.type)} is not WordPiece`);
    }
    // Ids must be token ids (HF's tokenizers reads them as u32): a string, fraction or negative id would
    // otherwise load and surface later as a wrong input id.
    for (const [tok, id] of Object.entries(model.vocab as Record<string, unknown>)) {
      if (!isTokenId(id)) {
        throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model.vocab[${JSON.stringify(tok.slice(0, 40))}] is ${describeJson(id)}, not a token id (an integer in [0, 2^32))`);
      }
    }
    if (!Array.isArray(tj.added_tokens)) tj.added_tokens = [];
    (tj.added_tokens as unknown[]).forEach((t, i) => {
      const entry = t as Record<string, unknown> | null;
      if (!entry || typeof entry !== 'object' || typeof entry.content !== 'string' || !isTokenId(entry.id)) {
        throw new TokenizerError('E_BAD_TOKENIZER', `${source}: added_tokens[${i}] is ${describeJson(t)}, not {id: <token id>, content: <string>, ...}`);
      }
    });
    for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(k in tj)) tj[k] = null;
    try {
      this.tk = new Tokenizer(tj, config);
    } catch (e) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: ${(e as Error).message}`);
    }
    this.normalizer = (this.tk.normalizer as unknown as LibNormalizer | null) ?? null;
    this.preTokenizer = (this.tk.pre_tokenizer as unknown as LibPreTokenizer | null) ?? null;
    this.model = this.tk.model as unknown as LibModel;
    installWordCache(this.model);

    const names: SpecialNames = {
      unk: tokenName(config.unk_token, typeof model.unk_token === 'string' ? model.unk_token : '[UNK]'),
      cls: tokenName(config.cls_token, '[CLS]'),
      sep: tokenName(config.sep_token, '[SEP]'),
      pad: tokenName(config.pad_token, '[PAD]'),
      mask: tokenName(config.mask_token, '[MASK]'),
    };
    const need = (name: string, what: string): number => {
      const id = this.tk.token_to_id(name);
      if (id === undefined) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: ${what} token ${name} is not in the vocabulary`);
      return id;
    };
    this.unkToken = names.unk;
    this.unkId = need(names.unk, 'unk');
    this.clsId = need(names.cls, 'cls');
    this.sepId = need(names.sep, 'sep');
    this.padId = this.tk.token_to_id(names.pad) ?? 0;
    this.maskId = this.tk.token_to_id(names.mask);
    this.vocabSize = this.model.vocab.length;

    const nconf = norm && norm.type === 'BertNormalizer' ? norm : null;
    this.doLowerCase = nconf ? nconf.lowercase === true : false;
    this.cleanText = nconf ? nconf.clean_text !== false : false;
    this.handleChinese = nconf ? nconf.handle_chinese_chars !== false : false;
    this.stripAccents = nconf ? (this.doLowerCase ? nconf.strip_accents !== false : nconf.strip_accents === true) : false;

    const raw: string[] = [];
    for (const t of tj.added_tokens as Array<Record<string, unknown>>) {
      const special = t.special === true;
      const normalized = t.normalized ?? !special;
      if (typeof t.content === 'string' && t.content.length > 0 && normalized === false) raw.push(t.content);
    }
    raw.sort((a, b) => b.length - a.length);
    this.specialSet = new Set(raw);
    this.specialRe = raw.length ? new RegExp(raw.map(escapeRegExp).join('|'), 'g') : null;

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

  /**
   * Loads `dir/tokenizer.json` (+ `dir/tokenizer_config.json` if present), or builds the same object from
   * `dir/vocab.txt`.
   */
  static fromDir(dir: string): BertTokenizer {
    const tjPath = path.join(dir, 'tokenizer.json');
    const vocabPath = path.join(dir, 'vocab.txt');
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    let config: BertTokenizerConfig = {};
    if (fs.existsSync(cfgPath)) {
      const c = readJsonFile(cfgPath);
      if (!c || typeof c !== 'object' || Array.isArray(c)) {
        throw new TokenizerError('E_BAD_TOKENIZER', `${cfgPath}: expected a JSON object`);
      }
      config = c as BertTokenizerConfig;
    }
    if (fs.existsSync(tjPath)) {
      const tj = readJsonFile(tjPath);
      if (!tj || typeof tj !== 'object' || Array.isArray(tj)) {
        throw new TokenizerError('E_BAD_TOKENIZER', `${tjPath}: expected a JSON object`);
      }
      return new BertTokenizer(tj as Record<string, unknown>, config, tjPath);
    }
    if (fs.existsSync(vocabPath)) {
      const vocab = readVocab(vocabPath);
      const tj = buildBertTokenizerJson(vocab, {
        lowercase: typeof config.do_lower_case === 'boolean' ? config.do_lower_case : true,
        stripAccents: config.strip_accents ?? null,
        handleChineseChars: typeof config.tokenize_chinese_chars === 'boolean' ? config.tokenize_chinese_chars : true,
        specials: {
          unk: tokenName(config.unk_token, '[UNK]'),
          cls: tokenName(config.cls_token, '[CLS]'),
          sep: tokenName(config.sep_token, '[SEP]'),
          pad: tokenName(config.pad_token, '[PAD]'),
          mask: tokenName(config.mask_token, '[MASK]'),
        },
      });
      return new BertTokenizer(tj, config, vocabPath);
    }
    throw new TokenizerError('E_FILE_NOT_FOUND', `no tokenizer found: neither ${tjPath} nor ${vocabPath} exists`);
  }

  tokenToId(token: string): number | undefined {
    return this.tk.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tk.id_to_token(id);
  }

  // -------------------------------------------------------------------------------------------------------
  // Pre-normalization: where tokenizers.js 0.2.0 differs from transformers 4.4.2's slow BertTokenizer
  // -------------------------------------------------------------------------------------------------------

  /**
   * Rewrites `text` so that tokenizers.js produces what HF's slow BertTokenizer (4.4.2) produces:
   *  1. Unassigned code points (category Cn) are dropped by BERT's `_clean_text` (any category C*), but
   *     tokenizers.js only drops Cc/Cf/Co/Cs. We drop all of them here (only when clean_text is on).
   *  2. CJK characters outside the BMP (extension B.., compatibility supplement) must become separate words;
   *     tokenizers.js tests UTF-16 code units, so it never sees them. We surround them with spaces.
   *  3. With do_lower_case, HF's `PreTrainedTokenizer.tokenize` lowercases the text one character at a time
   *     (`re.sub(... (.+?) ..., lower)`), which loses Greek final-sigma context: word-final 'Σ' becomes 'σ',
   *     while tokenizers.js lowercases whole strings and gives 'ς'. We map 'Σ' to 'σ' first.
   *  4. HF splits special tokens ([CLS] ...) out of the RAW text before cleaning. If dropping control
   *     characters creates a special-token string (e.g. "[CL\u200bS]"), HF does not treat it as special when
   *     lowercasing (it was lowercased first) and, without lowercasing, only when it is a whole
   *     whitespace-delimited word. tokenizers.js would match it after our removal, so we break it again with a
   *     U+200B that the library's own cleaning removes.
   * Pure printable-ASCII text is returned unchanged (fast path).
   */
  private prenormalize(text: string): string {
    if (PLAIN_TEXT_RE.test(text)) return text;
    if (!this.specialRe) return this.prenormSection(text);
    let out = '';
    let last = 0;
    const re = new RegExp(this.specialRe.source, 'g');
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      out += this.prenormSection(text.slice(last, m.index)) + m[0];
      last = m.index + m[0].length;
    }
    return out + this.prenormSection(text.slice(last));
  }

  private prenormSection(s: string): string {
    if (s.length === 0) return s;
    let c = s;
    if (this.doLowerCase) c = c.replace(/\u03A3/g, '\u03C3');
    if (this.cleanText) c = c.replace(REMOVED_CHARS_G, '');
    if (this.handleChinese) c = c.replace(ASTRAL_CJK_G, ' $& ');
    if (this.cleanText && this.specialRe && c.length !== s.length) {
      const re = new RegExp(this.specialRe.source, 'g');
      c = c.replace(re, (tok: string, off: number, str: string) => {
        const boundedLeft = off === 0 || WHITESPACE_RE.test(str[off - 1]);
        const boundedRight = off + tok.length === str.length || WHITESPACE_RE.test(str[off + tok.length]);
        if (!this.doLowerCase && boundedLeft && boundedRight) return tok;
        return tok[0] + '\u200b' + tok.slice(1);
      });
    }
    return c;
  }

  // -------------------------------------------------------------------------------------------------------
  // Encoding
  // -------------------------------------------------------------------------------------------------------

  /** Token ids of `text` without special tokens. */
  encodeText(text: string): number[] {
    return this.tk.encode(this.prenormalize(text), { add_special_tokens: false }).ids;
  }

  /** WordPiece tokens of `text` without special tokens (like HF `tokenize`). */
  tokenize(text: string): string[] {
    return this.tk.encode(this.prenormalize(text), { add_special_tokens: false }).tokens;
  }

  /**
   * Encodes a sequence or a pair like HF `tok(text, pair, truncation=..., max_length=...)`.
   * An empty-string pair is a real (empty) second segment: `[CLS] a [SEP] [SEP]`.
   */
  encode(text: string, pair?: string | null, opts: EncodeOptions = {}): Encoded {
    v.options('opts', opts, ENCODE_OPTIONS);
    const a = this.encodeText(text);
    const b = pair === undefined || pair === null ? null : this.encodeText(pair);
    return this.assemble(a, b, opts);
  }

  /** Like `encode`, from token ids that have no special tokens yet. */
  assemble(idsA: number[], idsB: number[] | null, opts: EncodeOptions = {}): Encoded {
    const addSpecial = v.boolean('opts.addSpecialTokens', opts.addSpecialTokens ?? true);
    const maxLength = opts.maxLength === undefined ? undefined : v.positiveInteger('opts.maxLength', opts.maxLength);
    const strategy: TruncationStrategy =
      opts.truncation === undefined ? (maxLength !== undefined ? 'longest_first' : false) : choice('opts.truncation', opts.truncation, TRUNCATIONS);
    let a = idsA;
    let b = idsB;
    if (strategy !== false && maxLength !== undefined) {
      const nSpecial = addSpecial ? (b ? 3 : 2) : 0;
      const total = a.length + (b ? b.length : 0) + nSpecial;
      [a, b] = truncatePair(a, b, total - maxLength, strategy, maxLength);
    } else if (strategy !== false && maxLength === undefined) {
      throw new TokenizerError('E_INVALID_ARG', `truncation '${strategy}' needs maxLength`);
    }
    const inputIds: number[] = [];
    const tokenTypeIds: number[] = [];
    if (addSpecial) inputIds.push(this.clsId);
    for (const id of a) inputIds.push(id);
    if (addSpecial) inputIds.push(this.sepId);
    const nFirst = inputIds.length;
    if (b) {
      for (const id of b) inputIds.push(id);
      if (addSpecial) inputIds.push(this.sepId);
    }
    for (let i = 0; i < inputIds.length; i++) tokenTypeIds.push(i < nFirst ? 0 : 1);
    const attentionMask = new Array<number>(inputIds.length).fill(1);
    return { inputIds, tokenTypeIds, attentionMask };
  }

  /**
   * Encodes a batch into flat row-major Int32Arrays [batchSize, seqLen].
   * Padding (pad id, attention 0, token type 0) goes to the longest row by default.
   */
  encodeBatch(items: BatchItem[], opts: BatchEncodeOptions = {}): BatchEncoded {
    v.options('opts', opts, [...ENCODE_OPTIONS, 'padding']);
    if (!Array.isArray(items)) throw v.invalidParameterError('items', 'an array of strings or [string, string] pairs', items);
    const padding: PaddingStrategy = opts.padding === undefined ? 'longest' : choice('opts.padding', opts.padding, PADDINGS);
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
        throw new TokenizerError('E_INVALID_ARG', 'padding=false needs rows of equal length; use padding "longest"');
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
   * BERT pre-tokenization is done here on the original string (specials, cleaning, whitespace, CJK and
   * punctuation splits) and each word is then encoded by the library. Within a word, pieces get exact
   * sub-spans through a per-character normalization map (e.g. "Playing" -> play [0,4), ##ing [4,7);
   * "Ångström" with a precomposed Å keeps exact spans too). If that map cannot be established, every piece
   * of the word gets the whole word's span.
   */
  tokenizeWithOffsets(text: string): TokenizedWithOffsets {
    const toks = this.contextTokens(text);
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
    const o = v.options('opts', opts, ['maxLength', 'docStride', 'maxQuestionLength']);
    const maxLength = v.positiveInteger('opts.maxLength', o.maxLength);
    const docStride = v.integer('opts.docStride', o.docStride, { min: 0 });
    const maxQuestionLength = o.maxQuestionLength === undefined ? undefined : v.positiveInteger('opts.maxQuestionLength', o.maxQuestionLength);
    let q = this.encodeText(question);
    if (maxQuestionLength !== undefined && q.length > maxQuestionLength) q = q.slice(0, maxQuestionLength);
    const maxCtx = maxLength - q.length - 3;
    if (maxCtx < 1) {
      throw new TokenizerError(
        'E_INVALID_ARG',
        `question is ${q.length} tokens; with [CLS] and 2x[SEP] it leaves no room for context in maxLength ${maxLength}`,
      );
    }
    let ctx: ContextToken[];
    if (this.lastContext && this.lastContext.text === context) ctx = this.lastContext.tokens;
    else {
      ctx = this.contextTokens(context);
      this.lastContext = { text: context, tokens: ctx };
    }
    const starts: number[] = [0];
    if (ctx.length > maxCtx) {
      if (docStride >= maxCtx) {
        throw new TokenizerError(
          'E_INVALID_ARG',
          `docStride ${docStride} must be smaller than the ${maxCtx} context tokens that fit in a window (maxLength ${maxLength}, question ${q.length} tokens)`,
        );
      }
      const step = maxCtx - docStride;
      for (let s = step; s - step + maxCtx < ctx.length; s += step) starts.push(s);
    }
    const windows: QuestionContextWindow[] = [];
    for (const s of starts) {
      const e = Math.min(s + maxCtx, ctx.length);
      const inputIds: number[] = [this.clsId, ...q, this.sepId];
      const offsets: Array<[number, number] | null> = new Array<[number, number] | null>(inputIds.length).fill(null);
      const contextStart = inputIds.length;
      for (let i = s; i < e; i++) {
        inputIds.push(ctx[i].id);
        offsets.push([ctx[i].start, ctx[i].end]);
      }
      const contextEnd = inputIds.length;
      inputIds.push(this.sepId);
      offsets.push(null);
      const tokenTypeIds = inputIds.map((_, i) => (i < contextStart ? 0 : 1));
      const attentionMask = new Array<number>(inputIds.length).fill(1);
      windows.push({ inputIds, tokenTypeIds, attentionMask, contextStart, contextEnd, contextTokenOffset: s, offsets });
    }
    return windows;
  }

  /** BERT words of the original text with spans, then library encoding per word. */
  private contextTokens(text: string): ContextToken[] {
    const out: ContextToken[] = [];
    const emitWord = (start: number, end: number): void => {
      if (end > start) this.encodeWord(text, start, end, out);
    };
    const sections: Array<[number, number, boolean]> = [];
    if (this.specialRe) {
      const re = new RegExp(this.specialRe.source, 'g');
      let last = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(text)) !== null) {
        if (m.index > last) sections.push([last, m.index, false]);
        sections.push([m.index, m.index + m[0].length, true]);
        last = m.index + m[0].length;
      }
      if (last < text.length) sections.push([last, text.length, false]);
    } else if (text.length) sections.push([0, text.length, false]);

    for (const [s0, s1, isSpecial] of sections) {
      if (isSpecial) {
        emitWord(s0, s1);
        continue;
      }
      let wordStart = -1; // start of the current word, -1 when none
      let wordEnd = -1; // end of its last kept char
      let i = s0;
      while (i < s1) {
        const cp = text.codePointAt(i) as number;
        const len = cp > 0xffff ? 2 : 1;
        const ch = text.slice(i, i + len);
        if (cp < 0x80) {
          // ASCII fast path
          if (cp === 32 || cp === 9 || cp === 10 || cp === 13 || (cp >= 11 && cp <= 12 && !this.cleanText)) {
            emitWord(wordStart, wordEnd);
            wordStart = -1;
          } else if (cp < 32 || cp === 127) {
            if (!this.cleanText) {
              if (wordStart < 0) wordStart = i;
              wordEnd = i + 1;
            }
          } else if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
            emitWord(wordStart, wordEnd);
            wordStart = -1;
            emitWord(i, i + 1);
          } else {
            if (wordStart < 0) wordStart = i;
            wordEnd = i + 1;
          }
          i += 1;
          continue;
        }
        if (this.cleanText && REMOVED_CHAR_RE.test(ch)) {
          // dropped, but does not end the word (BERT joins around removed characters)
        } else if (WHITESPACE_RE.test(ch)) {
          emitWord(wordStart, wordEnd);
          wordStart = -1;
        } else if ((this.handleChinese && isChineseChar(cp)) || (PUNCT_RE.test(ch) && this.normalizeChar(ch) === ch)) {
          // A punctuation char is split off only when normalization keeps it as is; otherwise the library
          // decides (a coarser word is safe: the library splits it further and alignment still works).
          emitWord(wordStart, wordEnd);
          wordStart = -1;
          emitWord(i, i + len);
        } else {
          if (wordStart < 0) wordStart = i;
          wordEnd = i + len;
        }
        i += len;
      }
      emitWord(wordStart, wordEnd);
    }
    return out;
  }

  /** Lowercasing / accent stripping of one character, as the BertNormalizer does it. */
  private normalizeChar(ch: string): string {
    let n = ch;
    if (this.doLowerCase) n = (n === '\u03A3' ? '\u03C3' : n).toLowerCase();
    if (this.stripAccents) n = n.normalize('NFD').replace(/\p{Mn}/gu, '');
    return n;
  }

  /** Encodes text[start, end) (one BERT word, or a special token) and appends its pieces with spans. */
  private encodeWord(text: string, start: number, end: number, out: ContextToken[]): void {
    const word = text.slice(start, end);
    const enc = this.tk.encode(this.prenormalize(word), { add_special_tokens: false });
    const ids = enc.ids;
    if (ids.length === 0) return;
    const aligned = this.alignWord(word, start, enc.tokens);
    for (let k = 0; k < ids.length; k++) {
      const span = aligned ? aligned[k] : [start, end];
      out.push({ id: ids[k], token: enc.tokens[k], start: span[0], end: span[1] });
    }
  }

  /**
   * Maps the pieces of one word back to the original text. Returns null when the pieces cannot be aligned
   * (the caller then uses the whole word's span).
   */
  private alignWord(word: string, base: number, pieces: string[]): Array<[number, number]> | null {
    if (pieces.length === 1) return [[base, base + word.length]];
    if (this.specialSet.has(word)) return null;
    // normalized string + for each normalized UTF-16 unit the original span it came from
    let norm: string;
    let unitStart: number[];
    let unitEnd: number[];
    if (ASCII_WORD_RE.test(word)) {
      norm = this.doLowerCase ? word.toLowerCase() : word;
      unitStart = new Array<number>(word.length);
      unitEnd = new Array<number>(word.length);
      for (let i = 0; i < word.length; i++) {
        unitStart[i] = base + i;
        unitEnd[i] = base + i + 1;
      }
    } else {
      norm = '';
      unitStart = [];
      unitEnd = [];
      let i = 0;
      while (i < word.length) {
        const cp = word.codePointAt(i) as number;
        const len = cp > 0xffff ? 2 : 1;
        const ch = word.slice(i, i + len);
        if (!(this.cleanText && REMOVED_CHAR_RE.test(ch))) {
          const n = this.normalizeChar(ch);
          for (let u = 0; u < n.length; u++) {
            unitStart.push(base + i);
            unitEnd.push(base + i + len);
          }
          norm += n;
        }
        i += len;
      }
      // The per-character map must reproduce the library's normalization of the whole word.
      const libNorm = this.normalizer ? this.normalizer.normalize(this.prenormalize(word)) : word;
      if (libNorm !== norm) return null;
    }
    // Library pre-tokens of the normalized word (usually just one), located in `norm`.
    const preTokens = this.preTokenizer ? this.preTokenizer.pre_tokenize_text(norm) : [norm];
    const spans: Array<[number, number]> = [];
    let cursor = 0;
    for (const pt of preTokens) {
      const at = norm.indexOf(pt, cursor);
      if (at < 0) return null;
      cursor = at + pt.length;
      const sub = this.model.encode([pt]);
      if (sub.length === 1 && sub[0] === this.unkToken) {
        spans.push([unitStart[at], unitEnd[at + pt.length - 1]]);
        continue;
      }
      let pos = at;
      for (let k = 0; k < sub.length; k++) {
        let piece = sub[k];
        if (k > 0 && piece.startsWith('##')) piece = piece.slice(2);
        if (piece.length === 0 || norm.substr(pos, piece.length) !== piece) return null;
        spans.push([unitStart[pos], unitEnd[pos + piece.length - 1]]);
        pos += piece.length;
      }
      if (pos !== at + pt.length) return null;
    }
    if (spans.length !== pieces.length) return null;
    return spans;
  }
}

/**
 * Memoizes the WordPiece model per pre-token (word): WordPiece is the slowest stage of tokenizers.js and
 * words repeat a lot in real text. The cache shadows the instance's `encode`; results are unchanged.
 */
function installWordCache(model: LibModel, maxEntries = 200_000): void {
  const original = model.encode.bind(model);
  let cache = new Map<string, string[]>();
  model.encode = (tokens: string[]): string[] => {
    const out: string[] = [];
    for (const t of tokens) {
      let pieces = cache.get(t);
      if (pieces === undefined) {
        pieces = original([t]);
        if (cache.size >= maxEntries) cache = new Map();
        cache.set(t, pieces);
      }
      for (const p of pieces) out.push(p);
    }
    return out;
  };
}

/**
 * HF transformers 4.x `truncate_sequences` (stride 0) for a total that is `numToRemove` over `maxLength`.
 * Throws E_INVALID_ARG where HF would log "We need to remove N tokens ..." and return over-long sequences.
 */
function truncatePair(
  ids: number[],
  pair: number[] | null,
  numToRemove: number,
  strategy: Exclude<TruncationStrategy, false>,
  maxLength: number,
): [number[], number[] | null] {
  if (numToRemove <= 0) return [ids, pair];
  if (strategy === 'longest_first') {
    let la = ids.length;
    let lb = pair ? pair.length : 0;
    for (let k = 0; k < numToRemove; k++) {
      if (pair === null || la > lb) {
        if (la === 0) break;
        la--;
      } else {
        if (lb === 0) break;
        lb--;
      }
    }
    const removed = ids.length - la + (pair ? pair.length - lb : 0);
    if (removed < numToRemove) {
      throw new TokenizerError('E_INVALID_ARG', `cannot truncate to maxLength ${maxLength}: not enough tokens to remove ${numToRemove}`);
    }
    return [ids.slice(0, la), pair ? pair.slice(0, lb) : null];
  }
  if (strategy === 'only_first') {
    if (ids.length > numToRemove) return [ids.slice(0, ids.length - numToRemove), pair];
    throw new TokenizerError(
      'E_INVALID_ARG',
      `cannot truncate with 'only_first' to maxLength ${maxLength}: need to remove ${numToRemove} tokens but the first sequence has ${ids.length}`,
    );
  }
  if (strategy === 'only_second') {
    if (pair === null) {
      throw new TokenizerError('E_INVALID_ARG', `cannot truncate with 'only_second' to maxLength ${maxLength}: there is no second sequence`);
    }
    if (pair.length > numToRemove) return [ids, pair.slice(0, pair.length - numToRemove)];
    throw new TokenizerError(
      'E_INVALID_ARG',
      `cannot truncate with 'only_second' to maxLength ${maxLength}: need to remove ${numToRemove} tokens but the second sequence has ${pair.length} (the first sequence is too long)`,
    );
  }
  throw new TokenizerError('E_INVALID_ARG', `unknown truncation strategy ${String(strategy)}`);
}
