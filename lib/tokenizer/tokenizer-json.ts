/**
 * tokenizer.json: reading a tokenizer directory, checking the file before tokenizers.js sees it, and building
 * the same object from the files of a slow tokenizer (BERT's vocab.txt; RoBERTa's vocab.json + merges.txt).
 */
import * as fs from 'fs';
import * as path from 'path';
import { BERT_SPECIALS, ROBERTA_SPECIALS } from './family';
import type { SpecialNames, TokenizerModelKind } from './family';
import { TokenizerError } from './tokenizer-error';

/** tokenizer_config.json: the settings BertTokenizerFast lets override tokenizer.json. */
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

export type { SpecialNames } from './family';

/** A tokenizer directory's files, read and parsed. */
export interface TokenizerFiles {
  json: Record<string, unknown>;
  config: BertTokenizerConfig;
  /** The file the tokenizer came from (named in errors). */
  source: string;
  /** The kind of model the files hold (tokenizer.json's model.type, or which slow files are there). */
  modelKind: TokenizerModelKind;
}

/** A checked tokenizer.json, with tokenizer_config.json's overrides applied. */
export interface PreparedTokenizerJson {
  json: Record<string, unknown>;
  /** The BertNormalizer settings, or null when the normalizer is another kind (or none). */
  bertNormalizer: Record<string, unknown> | null;
  /** Added tokens matched in the raw text (normalized: false), longest first. */
  rawAddedTokens: string[];
  /** The special token names: tokenizer_config.json's, else the model's unk token, else the family's. */
  specials: SpecialNames;
  modelKind: TokenizerModelKind;
}

function tokenName(v: unknown, dflt: string): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return dflt;
}

/** tokenizer_config.json's special tokens, else `dflt`'s (the model's unk token first, when it names one). */
export function specialNames(config: BertTokenizerConfig, dflt: SpecialNames = BERT_SPECIALS, unk?: string): SpecialNames {
  return {
    unk: tokenName(config.unk_token, unk ?? dflt.unk),
    cls: tokenName(config.cls_token, dflt.cls),
    sep: tokenName(config.sep_token, dflt.sep),
    pad: tokenName(config.pad_token, dflt.pad),
    mask: tokenName(config.mask_token, dflt.mask),
  };
}

function readTextFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError('E_BAD_TOKENIZER', `cannot read ${file}: ${(e as Error).message}`);
  }
}

function readJsonObject(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readTextFile(file));
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    throw new TokenizerError('E_BAD_TOKENIZER', `invalid JSON in ${file}: ${(e as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenizerError('E_BAD_TOKENIZER', `${file}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function isTokenId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function describeJson(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 60) + '…' : s;
}

/**
 * Reads vocab.txt like transformers' `load_vocab`: one token per line, id = line index, a repeated token keeps
 * its last id. Python reads with universal newlines, so a trailing \r is dropped as well.
 */
function readVocab(file: string): Record<string, number> {
  const lines = readTextFile(file).split('\n');
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

/**
 * Reads vocab.json + merges.txt like transformers' slow RobertaTokenizer (GPT2Tokenizer): vocab.json maps tokens
 * to ids; merges.txt has a `#version` line, then one merge (two tokens, a space between) per line, rank = order.
 */
function readBpeFiles(vocabFile: string, mergesFile: string): { vocab: Record<string, number>; merges: Array<[string, string]> } {
  const vocab = readJsonObject(vocabFile);
  const lines = readTextFile(mergesFile).split('\n');
  if (lines.length > 0 && lines[0].startsWith('#version')) lines.shift();
  const merges: Array<[string, string]> = [];
  lines.forEach((line, i) => {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (l === '') return;
    const parts = l.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new TokenizerError('E_BAD_TOKENIZER', `${mergesFile}: line ${i + 2} is ${describeJson(l)}, not two tokens separated by one space`);
    }
    merges.push([parts[0], parts[1]]);
  });
  return { vocab: vocab as Record<string, number>, merges };
}

/**
 * The tokenizer.json that transformers' RobertaConverter writes for vocab.json + merges.txt: byte-level BPE
 * without a continuing-subword prefix, a ByteLevel pre-tokenizer, RobertaProcessing with trim_offsets, and the
 * special tokens as RobertaTokenizer adds them (`<mask>` eats the whitespace on its left).
 */
export function buildRobertaTokenizerJson(
  vocab: Record<string, number>,
  merges: ReadonlyArray<readonly [string, string]>,
  opts: { addPrefixSpace?: boolean; specials?: Partial<SpecialNames> } = {},
): Record<string, unknown> {
  const sp: SpecialNames = { ...ROBERTA_SPECIALS, ...opts.specials };
  const addPrefixSpace = opts.addPrefixSpace ?? false;
  const added = [sp.cls, sp.pad, sp.sep, sp.unk, sp.mask]
    .filter((name, i, all) => vocab[name] !== undefined && all.indexOf(name) === i)
    .map((name) => ({ id: vocab[name], content: name, single_word: false, lstrip: name === sp.mask, rstrip: false, normalized: false, special: true }))
    .sort((a, b) => a.id - b.id);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: [sp.sep, vocab[sp.sep]], cls: [sp.cls, vocab[sp.cls]], trim_offsets: true, add_prefix_space: addPrefixSpace },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: sp.unk, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges: merges.map((m) => [m[0], m[1]]) },
  };
}

const MODEL_KINDS: readonly string[] = ['WordPiece', 'BPE', 'Unigram'];

/** The kind of model of a parsed tokenizer.json (its `model.type`, or the shape of an untyped model as tokenizers guesses it). */
export function modelKindOf(json: Record<string, unknown>, source: string): TokenizerModelKind {
  const model = json.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object') throw new TokenizerError('E_BAD_TOKENIZER', `${source}: no model object`);
  if (model.type === undefined) return Array.isArray(model.vocab) ? 'Unigram' : 'merges' in model ? 'BPE' : 'WordPiece';
  if (!MODEL_KINDS.includes(model.type as string)) {
    throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model type ${describeJson(model.type)} is not supported (WordPiece, BPE or Unigram)`);
  }
  return model.type as TokenizerModelKind;
}

/** The files a tokenizer directory may hold (tokenizer.json, or a slow tokenizer's files), to copy one whole. */
export const TOKENIZER_FILES: readonly string[] = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'vocab.json', 'merges.txt'];

/** Whether `dir` holds a tokenizer readTokenizerDir can load: tokenizer.json, vocab.txt, or vocab.json + merges.txt. */
export function hasTokenizerFiles(dir: string): boolean {
  const has = (f: string): boolean => fs.existsSync(path.join(dir, f));
  return has('tokenizer.json') || has('vocab.txt') || (has('vocab.json') && has('merges.txt'));
}

/**
 * Reads `dir/tokenizer.json` (+ `dir/tokenizer_config.json` if present), or builds the same object from the slow
 * tokenizer's files: `dir/vocab.txt` (WordPiece), or `dir/vocab.json` + `dir/merges.txt` (byte-level BPE).
 */
export function readTokenizerDir(dir: string): TokenizerFiles {
  const tjPath = path.join(dir, 'tokenizer.json');
  const vocabPath = path.join(dir, 'vocab.txt');
  const bpeVocabPath = path.join(dir, 'vocab.json');
  const mergesPath = path.join(dir, 'merges.txt');
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  const config: BertTokenizerConfig = fs.existsSync(cfgPath) ? readJsonObject(cfgPath) : {};
  if (fs.existsSync(tjPath)) {
    const json = readJsonObject(tjPath);
    return { json, config, source: tjPath, modelKind: modelKindOf(json, tjPath) };
  }
  if (fs.existsSync(vocabPath)) {
    const json = buildBertTokenizerJson(readVocab(vocabPath), {
      lowercase: typeof config.do_lower_case === 'boolean' ? config.do_lower_case : true,
      stripAccents: config.strip_accents ?? null,
      handleChineseChars: typeof config.tokenize_chinese_chars === 'boolean' ? config.tokenize_chinese_chars : true,
      specials: specialNames(config),
    });
    return { json, config, source: vocabPath, modelKind: 'WordPiece' };
  }
  if (fs.existsSync(bpeVocabPath) && fs.existsSync(mergesPath)) {
    const { vocab, merges } = readBpeFiles(bpeVocabPath, mergesPath);
    const addPrefixSpace = config.add_prefix_space === true;
    const json = buildRobertaTokenizerJson(vocab, merges, { addPrefixSpace, specials: specialNames(config, ROBERTA_SPECIALS) });
    return { json, config, source: bpeVocabPath, modelKind: 'BPE' };
  }
  throw new TokenizerError(
    'E_FILE_NOT_FOUND',
    `no tokenizer found: neither ${tjPath} nor ${vocabPath} exists (nor ${bpeVocabPath} with ${mergesPath})`,
  );
}

/** Checks a model's `vocab` object: every id a token id (HF's tokenizers reads them as u32). */
function checkVocabObject(vocab: unknown, kind: TokenizerModelKind, source: string): void {
  if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) {
    throw new TokenizerError('E_BAD_TOKENIZER', `${source}: expected a ${kind} model with a vocab object`);
  }
  // A string, fraction or negative id would otherwise load and surface later as a wrong input id.
  for (const [tok, id] of Object.entries(vocab as Record<string, unknown>)) {
    if (!isTokenId(id)) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model.vocab[${JSON.stringify(tok.slice(0, 40))}] is ${describeJson(id)}, not a token id (an integer in [0, 2^32))`);
    }
  }
}

/** Checks the model of a tokenizer.json of the given kind, as far as tokenizers.js would otherwise misread it. */
function checkModel(model: Record<string, unknown>, kind: TokenizerModelKind, source: string): void {
  if (kind === 'WordPiece') return checkVocabObject(model.vocab, kind, source);
  if (kind === 'BPE') {
    checkVocabObject(model.vocab, kind, source);
    const ok = Array.isArray(model.merges) && (model.merges as unknown[]).every((m) => typeof m === 'string' || (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')));
    if (!ok) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model.merges must be an array of "a b" strings or [a, b] pairs`);
    return;
  }
  const vocab = model.vocab;
  if (!Array.isArray(vocab) || vocab.length === 0) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: expected a Unigram model with a vocab array of [piece, score]`);
  vocab.forEach((e: unknown, i) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model.vocab[${i}] is ${describeJson(e)}, not [piece, score]`);
    }
  });
  if (!Number.isInteger(model.unk_id) || (model.unk_id as number) < 0 || (model.unk_id as number) >= vocab.length) {
    throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model.unk_id is ${describeJson(model.unk_id)}, not the index of a vocab entry`);
  }
}

/**
 * Checks a parsed tokenizer.json whose model must be `kind`, and applies tokenizer_config.json's
 * `do_lower_case`, `strip_accents` and `tokenize_chinese_chars` to its BertNormalizer, as BertTokenizerFast does.
 * `family` gives the special tokens' default names. The input is not modified.
 */
export function prepareTokenizerJson(
  tokenizerJson: Record<string, unknown>,
  config: BertTokenizerConfig,
  source: string,
  kind: TokenizerModelKind = 'WordPiece',
  familySpecials: SpecialNames = BERT_SPECIALS,
): PreparedTokenizerJson {
  const tj = { ...tokenizerJson };
  const norm = tj.normalizer && typeof tj.normalizer === 'object' ? { ...(tj.normalizer as Record<string, unknown>) } : null;
  if (norm && norm.type === 'BertNormalizer') {
    if (typeof config.do_lower_case === 'boolean') norm.lowercase = config.do_lower_case;
    if (config.strip_accents !== undefined) norm.strip_accents = config.strip_accents;
    if (typeof config.tokenize_chinese_chars === 'boolean') norm.handle_chinese_chars = config.tokenize_chinese_chars;
    tj.normalizer = norm;
  }
  const model = tj.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object') throw new TokenizerError('E_BAD_TOKENIZER', `${source}: expected a ${kind} model with a vocab`);
  if (model.type !== undefined && model.type !== kind) {
    throw new TokenizerError('E_BAD_TOKENIZER', `${source}: model type ${String(model.type)} is not ${kind}`);
  }
  checkModel(model, kind, source);
  if (!Array.isArray(tj.added_tokens)) tj.added_tokens = [];
  (tj.added_tokens as unknown[]).forEach((t, i) => {
    const entry = t as Record<string, unknown> | null;
    if (!entry || typeof entry !== 'object' || typeof entry.content !== 'string' || !isTokenId(entry.id)) {
      throw new TokenizerError('E_BAD_TOKENIZER', `${source}: added_tokens[${i}] is ${describeJson(t)}, not {id: <token id>, content: <string>, ...}`);
    }
  });
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(k in tj)) tj[k] = null;

  const rawAddedTokens: string[] = [];
  for (const t of tj.added_tokens as Array<Record<string, unknown>>) {
    const special = t.special === true;
    const normalized = t.normalized ?? !special;
    if (typeof t.content === 'string' && t.content.length > 0 && normalized === false) rawAddedTokens.push(t.content);
  }
  rawAddedTokens.sort((a, b) => b.length - a.length);
  // Unigram names its unknown piece by index.
  const unigramUnk = kind === 'Unigram' ? (model.vocab as Array<[string, number]>)[model.unk_id as number][0] : undefined;
  const unk = typeof model.unk_token === 'string' ? model.unk_token : unigramUnk;
  return {
    json: tj,
    bertNormalizer: norm && norm.type === 'BertNormalizer' ? norm : null,
    rawAddedTokens,
    specials: specialNames(config, familySpecials, unk),
    modelKind: kind,
  };
}
