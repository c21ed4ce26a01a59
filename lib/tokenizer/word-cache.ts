/** CachedModel: memoizes the tokenizers.js WordPiece model per word, installed through the library's own API. */
import { Model } from '@huggingface/tokenizers';
import type { Tokenizer } from '@huggingface/tokenizers';

/**
 * WordPiece is the slowest stage of tokenizers.js, and words repeat a lot in real text, so its output is
 * memoized per pre-token (word). WordPiece encodes each word on its own, so the cache changes no result.
 *
 * This is a `Model` of its own (the library's abstract base, whose `encode` is the one method a model
 * implements) that delegates to the library's model: the library's objects are left as they are, and a
 * library whose Tokenizer stopped calling `model` / `encode` would only make this slower, never wrong.
 */
export class CachedModel extends Model {
  private cache = new Map<string, string[]>();

  constructor(
    private readonly inner: Model,
    private readonly maxEntries = 200_000,
  ) {
    super(inner.config);
    // The Tokenizer reads ids, tokens and the unknown token through its model, and has already added its
    // added tokens to these tables: share them rather than copy.
    this.vocab = inner.vocab;
    this.tokens_to_ids = inner.tokens_to_ids;
    this.unk_token_id = inner.unk_token_id;
    this.unk_token = inner.unk_token;
    this.end_of_word_suffix = inner.end_of_word_suffix;
    this.fuse_unk = inner.fuse_unk;
  }

  override encode(tokens: string[]): string[] {
    const out: string[] = [];
    for (const t of tokens) {
      let pieces = this.cache.get(t);
      if (pieces === undefined) {
        pieces = this.inner.encode([t]);
        // Bounded memory on endless streams of new words: start over rather than track recency.
        if (this.cache.size >= this.maxEntries) this.cache = new Map();
        this.cache.set(t, pieces);
      }
      for (const p of pieces) out.push(p);
    }
    return out;
  }
}

/** Puts a CachedModel in front of `model`, `tk`'s model (`Tokenizer.model` is a public, assignable property). */
export function cacheWordPieces(tk: Tokenizer, model: Model): CachedModel {
  const cached = new CachedModel(model);
  tk.model = cached;
  return cached;
}
