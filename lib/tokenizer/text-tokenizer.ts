/**
 * TextTokenizer: text -> tokens (no special tokens added), with the span of the original text behind each, for
 * each kind of model. The tokenizer class is the same for every family; only this part and the layout differ.
 *  - WordPiece (BERT, DistilBERT): the library's tokenizer on prenormalized text; offsets from OffsetTokenizer.
 *  - BPE (RoBERTa): byte-level BPE (byte-level.ts).
 *  - Unigram (XLM-R): Metaspace + Unigram (unigram.ts).
 */
import { BPE } from '@huggingface/tokenizers';
import type { Model, Tokenizer } from '@huggingface/tokenizers';
import { addedTokenSpecs } from './added-tokens';
import { ByteLevelBpe } from './byte-level';
import { OffsetTokenizer } from './offset-tokenizer';
import type { ContextToken } from './offset-tokenizer';
import { Prenormalizer, textRules } from './prenormalize';
import { TokenizerError } from './tokenizer-error';
import type { PreparedTokenizerJson } from './tokenizer-json';
import { MetaspaceUnigram } from './unigram';
import type { MetaspaceOptions } from './unigram';
import { cacheWordPieces } from './word-cache';

export interface TextTokenizer {
  /** Whether text is lowercased before the model sees it. */
  readonly doLowerCase: boolean;
  /** Token ids, no special tokens added. */
  ids(text: string): number[];
  /** Token strings (HF `tokenize`). */
  tokens(text: string): string[];
  /** Tokens with their [start, end) spans in UTF-16 units of `text`; the ids equal `ids(text)`. */
  withOffsets(text: string): ContextToken[];
}

/** BERT WordPiece: tokenizers.js encodes (with a per-word cache), prenormalize.ts makes it match the slow tokenizer. */
class WordPieceText implements TextTokenizer {
  readonly doLowerCase: boolean;
  private readonly text: Prenormalizer;
  private readonly offsets: OffsetTokenizer;

  constructor(
    private readonly tk: Tokenizer,
    model: Model,
    prepared: PreparedTokenizerJson,
  ) {
    const cached = cacheWordPieces(tk, model);
    this.text = new Prenormalizer(textRules(prepared.bertNormalizer, prepared.rawAddedTokens));
    this.doLowerCase = this.text.rules.doLowerCase;
    this.offsets = new OffsetTokenizer(tk, cached, this.text, prepared.specials.unk, prepared.rawAddedTokens);
  }

  ids(text: string): number[] {
    return this.tk.encode(this.text.prenormalize(text), { add_special_tokens: false }).ids;
  }

  tokens(text: string): string[] {
    return this.tk.encode(this.text.prenormalize(text), { add_special_tokens: false }).tokens;
  }

  withOffsets(text: string): ContextToken[] {
    return this.offsets.tokens(text);
  }
}

/** A model that gives tokens with spans (byte-level BPE, Unigram): ids and strings are read off them. */
class SpanText implements TextTokenizer {
  readonly doLowerCase = false;
  constructor(private readonly model: { tokens(text: string): ContextToken[] }) {}
  ids(text: string): number[] {
    return this.model.tokens(text).map((t) => t.id);
  }
  tokens(text: string): string[] {
    return this.model.tokens(text).map((t) => t.token);
  }
  withOffsets(text: string): ContextToken[] {
    return this.model.tokens(text);
  }
}

type Json = Record<string, unknown>;

/** The pre-tokenizer of `type` in a tokenizer.json (itself, or inside a Sequence), else null. */
function findPreTokenizer(preTokenizer: unknown, type: string): Json | null {
  const p = preTokenizer as Json | null;
  if (!p || typeof p !== 'object') return null;
  if (p.type === type) return p;
  if (p.type === 'Sequence' && Array.isArray(p.pretokenizers)) {
    for (const q of p.pretokenizers as unknown[]) {
      const found = findPreTokenizer(q, type);
      if (found) return found;
    }
  }
  return null;
}

/** The TextTokenizer of a prepared tokenizer.json, over `tk` (the library's Tokenizer built from it) and its model. */
export function createTextTokenizer(tk: Tokenizer, model: Model, prepared: PreparedTokenizerJson, unkId: number, source: string): TextTokenizer {
  const json = prepared.json;
  const added = addedTokenSpecs(json.added_tokens as Json[]);
  if (prepared.modelKind === 'WordPiece') return new WordPieceText(tk, model, prepared);
  if (prepared.modelKind === 'BPE') {
    const byteLevel = findPreTokenizer(json.pre_tokenizer, 'ByteLevel');
    if (!byteLevel) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: a BPE model needs a ByteLevel pre-tokenizer (RoBERTa's byte-level BPE is the one supported)`);
    // RoBERTa's tokenizer.json has no normalizer; one that had would change text the offsets are computed on.
    if (json.normalizer !== null) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: a byte-level BPE with a normalizer is not supported`);
    if (!(model instanceof BPE)) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: tokenizers.js made no BPE model of it`);
    return new SpanText(new ByteLevelBpe(model, added, unkId, byteLevel.add_prefix_space === true));
  }
  const metaspace = findPreTokenizer(json.pre_tokenizer, 'Metaspace');
  if (!metaspace) throw new TokenizerError('E_BAD_TOKENIZER', `${source}: a Unigram model needs a Metaspace pre-tokenizer (XLM-R's SentencePiece Unigram is the one supported)`);
  const scheme = metaspace.prepend_scheme;
  const opts: MetaspaceOptions = {
    replacement: typeof metaspace.replacement === 'string' && metaspace.replacement !== '' ? metaspace.replacement : '\u2581',
    // Older files say add_prefix_space (true: 'always'); newer ones prepend_scheme.
    prependScheme: scheme === 'first' || scheme === 'never' || scheme === 'always' ? scheme : metaspace.add_prefix_space === false ? 'never' : 'always',
  };
  const normalizer = tk.normalizer;
  return new SpanText(new MetaspaceUnigram(model, normalizer ? (s) => normalizer.normalize(s) : null, added, unkId, opts));
}
