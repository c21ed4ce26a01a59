/**
 * XLM-R's SentencePiece Unigram (tokenizer.json: a Unigram model behind a Metaspace pre-tokenizer) with the span
 * of the original text behind each token.
 *
 * The best segmentation (Viterbi over the pieces' scores) is the library's (tokenizers.js `Unigram`); the words
 * are made here, because tokenizers.js 0.2.0's Metaspace does not split: it would run Viterbi over the whole
 * text, letting a piece cross a word boundary, where SentencePiece and HF's Metaspace (split: true) segment
 * each word on its own. A word is a run of non-whitespace; it gets the replacement character ('▁') in front
 * when whitespace precedes it, and, for the first word of a section, as the prepend scheme says.
 *
 * Offsets: a piece covers its characters of the original word; the '▁' covers nothing, so "▁world" spans
 * "world" without the space before it (like RoBERTa's trim_offsets, and HF's XLM-R with its WhitespaceSplit
 * pre-tokenizer). When the normalizer changes a word's length, every piece of the word gets the whole word's
 * span. Consecutive unknown pieces are fused into one `<unk>`, as HF's Unigram does (fuse_unk).
 */
import type { Model } from '@huggingface/tokenizers';
import type { AddedTokenSpec } from './added-tokens';
import { PY_SPACE_CLASS, splitAddedTokens } from './added-tokens';
import type { ContextToken } from './offset-tokenizer';

const WORD_RE = new RegExp(`[^${PY_SPACE_CLASS}]+`, 'g');

export interface MetaspaceOptions {
  /** The character that stands for a space (default '▁'). */
  replacement: string;
  /** Whether a section's first word gets the replacement in front: always, for the text's first section only, never. */
  prependScheme: 'always' | 'first' | 'never';
}

export class MetaspaceUnigram {
  constructor(
    private readonly model: Model,
    private readonly normalize: ((text: string) => string) | null,
    private readonly addedTokens: readonly AddedTokenSpec[],
    private readonly unkId: number,
    private readonly opts: MetaspaceOptions,
  ) {}

  /** The tokens of `text` (no special tokens added) with their [start, end) spans in UTF-16 units. */
  tokens(text: string): ContextToken[] {
    const out: ContextToken[] = [];
    splitAddedTokens(text, this.addedTokens).forEach((s, index) => {
      if (s.token) {
        out.push({ id: s.token.id, token: s.token.content, start: s.start, end: s.end });
        return;
      }
      const re = new RegExp(WORD_RE.source, 'g');
      for (let m = re.exec(text.slice(s.start, s.end)); m !== null; m = re.exec(text.slice(s.start, s.end))) {
        const afterSpace = m.index > 0;
        const { prependScheme } = this.opts;
        const prefix = afterSpace || prependScheme === 'always' || (prependScheme === 'first' && index === 0);
        this.encodeWord(m[0], s.start + m.index, prefix, out);
      }
    });
    return out;
  }

  private encodeWord(word: string, base: number, prefix: boolean, out: ContextToken[]): void {
    const norm = this.normalize ? this.normalize(word) : word;
    const input = (prefix ? this.opts.replacement : '') + norm.replaceAll(' ', this.opts.replacement);
    const pieces = this.model.encode([input]);
    // UTF-16 start of each code point of the word, and its end.
    const cpStart: number[] = [];
    for (let i = 0; i < word.length; i += (word.codePointAt(i) as number) > 0xffff ? 2 : 1) cpStart.push(base + i);
    cpStart.push(base + word.length);
    const aligned = pieces.join('') === input && Array.from(norm).length === cpStart.length - 1;
    const skip = prefix ? 1 : 0; // the replacement in front stands for no character of the word
    const first0 = out.length;
    let pos = 0;
    for (const piece of pieces) {
      const n = Array.from(piece).length;
      let start = base;
      let end = base + word.length;
      if (aligned) {
        start = cpStart[Math.max(pos, skip) - skip];
        end = cpStart[pos + n - skip]; // one past the piece's last character of the word
      }
      pos += n;
      const id = this.model.tokens_to_ids.get(piece) ?? this.unkId;
      const prev = out[out.length - 1];
      // fuse_unk: a run of unknown characters in a word is one <unk> over all of them.
      if (id === this.unkId && out.length > first0 && prev.id === this.unkId) {
        prev.end = end;
        prev.token += piece;
        continue;
      }
      out.push({ id, token: piece, start, end });
    }
  }
}
