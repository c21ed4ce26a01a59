/**
 * tokenizer.json for a BERT WordPiece tokenizer: reading a tokenizer directory, checking the file before
 * tokenizers.js sees it, and building the same object from a bare vocab.txt.
 */
import * as fs from 'fs';
import * as path from 'path';
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

export interface SpecialNames {
  unk: string;
  cls: string;
  sep: string;
  pad: string;
  mask: string;
}

/** A tokenizer directory's files, read and parsed. */
export interface TokenizerFiles {
  json: Record<string, unknown>;
  config: BertTokenizerConfig;
  /** The file the tokenizer came from (named in errors). */
  source: string;
}

/** A checked tokenizer.json, with tokenizer_config.json's overrides applied. */
export interface PreparedTokenizerJson {
  json: Record<string, unknown>;
  /** The BertNormalizer settings, or null when the normalizer is another kind (or none). */
  bertNormalizer: Record<string, unknown> | null;
  /** Added tokens matched in the raw text (normalized: false), longest first. */
  rawAddedTokens: string[];
  /** The special token names: tokenizer_config.json's, else the model's unk token, else BERT's. */
  specials: SpecialNames;
}

function tokenName(v: unknown, dflt: string): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return dflt;
}

function specialNames(config: BertTokenizerConfig, unk = '[UNK]'): SpecialNames {
  return {
    unk: tokenName(config.unk_token, unk),
    cls: tokenName(config.cls_token, '[CLS]'),
    sep: tokenName(config.sep_token, '[SEP]'),
    pad: tokenName(config.pad_token, '[PAD]'),
    mask: tokenName(config.mask_token, '[MASK]'),
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
 * Reads `dir/tokenizer.json` (+ `dir/tokenizer_config.json` if present), or builds the same object from
 * `dir/vocab.txt`.
 */
export function readTokenizerDir(dir: string): TokenizerFiles {
  const tjPath = path.join(dir, 'tokenizer.json');
  const vocabPath = path.join(dir, 'vocab.txt');
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  const config: BertTokenizerConfig = fs.existsSync(cfgPath) ? readJsonObject(cfgPath) : {};
  if (fs.existsSync(tjPath)) return { json: readJsonObject(tjPath), config, source: tjPath };
  if (fs.existsSync(vocabPath)) {
    const json = buildBertTokenizerJson(readVocab(vocabPath), {
      lowercase: typeof config.do_lower_case === 'boolean' ? config.do_lower_case : true,
      stripAccents: config.strip_accents ?? null,
      handleChineseChars: typeof config.tokenize_chinese_chars === 'boolean' ? config.tokenize_chinese_chars : true,
      specials: specialNames(config),
    });
    return { json, config, source: vocabPath };
  }
  throw new TokenizerError('E_FILE_NOT_FOUND', `no tokenizer found: neither ${tjPath} nor ${vocabPath} exists`);
}

/**
 * Checks a parsed tokenizer.json and applies tokenizer_config.json's `do_lower_case`, `strip_accents` and
 * `tokenize_chinese_chars` to its BertNormalizer, as BertTokenizerFast does. The input is not modified.
 */
export function prepareTokenizerJson(tokenizerJson: Record<string, unknown>, config: BertTokenizerConfig, source: string): PreparedTokenizerJson {
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

  const rawAddedTokens: string[] = [];
  for (const t of tj.added_tokens as Array<Record<string, unknown>>) {
    const special = t.special === true;
    const normalized = t.normalized ?? !special;
    if (typeof t.content === 'string' && t.content.length > 0 && normalized === false) rawAddedTokens.push(t.content);
  }
  rawAddedTokens.sort((a, b) => b.length - a.length);
  return {
    json: tj,
    bertNormalizer: norm && norm.type === 'BertNormalizer' ? norm : null,
    rawAddedTokens,
    specials: specialNames(config, typeof model.unk_token === 'string' ? model.unk_token : '[UNK]'),
  };
}
