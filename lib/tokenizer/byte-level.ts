/**
 * RoBERTa's (GPT-2's) byte-level BPE with the span of the original text behind each token.
 *
 * Reference semantics: transformers 4.4.2's slow `RobertaTokenizer` (what the fixtures were made with). The BPE
 * merges are the library's (tokenizers.js `BPE`, built from tokenizer.json's model); the steps around them are
 * done here, because tokenizers.js 0.2.0 differs from the slow tokenizer in these cases:
 *  1. Whitespace: the GPT-2 pattern runs on Python's `regex` module, whose `\s` is Unicode White_Space; JS's
 *     `\s` adds U+FEFF and lacks U+0085. The pattern below spells the class out.
 *  2. Added tokens (`<s>`, `<mask>` ...) are split out of the raw text as the slow tokenizer does, with Python's
 *     `rstrip()` for `<mask>`'s lstrip (added-tokens.ts); tokenizers.js trims with JS's `trimEnd()`.
 *  3. Text made only of whitespace gives no tokens (slow), not its spaces (fast).
 *  4. Offsets (which tokenizers.js does not give) follow the fast tokenizer with trim_offsets: a token covers the
 *     characters of its bytes (a token holding part of a multi-byte character covers the whole character), less
 *     its leading and trailing 'Ġ' spaces.
 */
import type { BPE } from '@huggingface/tokenizers';
import type { AddedTokenSpec } from './added-tokens';
import { PY_SPACE_CLASS, splitAddedTokens } from './added-tokens';
import type { ContextToken } from './offset-tokenizer';

/** Unicode White_Space, what `\s` is in Python's `regex` module. */
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** GPT-2's pre-tokenization pattern (transformers' `self.pat`), with `\s` / `\S` spelled as the `regex` module reads them. */
const GPT2_PATTERN = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, 'gu');

/** GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others for U+0100 onwards. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) table.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  return table;
})();
/** The byte-level character of a space: a token's leading/trailing spaces are trimmed from its offsets. */
const SPACE_CHAR = BYTE_TO_CHAR[0x20];

const utf8 = new TextEncoder();
const STARTS_WITH_SPACE = new RegExp(`^[${PY_SPACE_CLASS}]`);

export class ByteLevelBpe {
  constructor(
    /** The library's BPE model (its merges, and its vocabulary with the added tokens). */
    private readonly model: BPE,
    private readonly addedTokens: readonly AddedTokenSpec[],
    private readonly unkId: number,
    /** Prepend a space to text that does not start with whitespace (tokenizer add_prefix_space). */
    private readonly addPrefixSpace: boolean,
  ) {}

  /** The tokens of `text` (no special tokens added) with their [start, end) spans in UTF-16 units. */
  tokens(text: string): ContextToken[] {
    const out: ContextToken[] = [];
    // add_prefix_space (slow prepare_for_tokenization): the added space covers no original character.
    const prefixed = this.addPrefixSpace && text.length > 0 && !STARTS_WITH_SPACE.test(text);
    const src = prefixed ? ' ' + text : text;
    const shift = prefixed ? 1 : 0;
    for (const s of splitAddedTokens(src, this.addedTokens)) {
      if (s.token) out.push({ id: s.token.id, token: s.token.content, start: Math.max(0, s.start - shift), end: s.end - shift });
      else this.encodeSection(src, s.start, s.end, shift, out);
    }
    return out;
  }

  private encodeSection(text: string, start: number, end: number, shift: number, out: ContextToken[]): void {
    const section = text.slice(start, end);
    const re = new RegExp(GPT2_PATTERN.source, 'gu');
    for (let m = re.exec(section); m !== null; m = re.exec(section)) {
      this.encodeWord(m[0], start + m.index - shift, out);
    }
  }

  /** One pre-token at `base` (may be -1 for an added prefix space): UTF-8 bytes -> characters -> BPE. */
  private encodeWord(word: string, base: number, out: ContextToken[]): void {
    // For each byte: the [start, end) of the character it belongs to.
    const byteStart: number[] = [];
    const byteEnd: number[] = [];
    let chars = '';
    for (let i = 0; i < word.length; ) {
      const cp = word.codePointAt(i) as number;
      const len = cp > 0xffff ? 2 : 1;
      for (const b of utf8.encode(word.slice(i, i + len))) {
        chars += BYTE_TO_CHAR[b];
        byteStart.push(Math.max(0, base + i));
        byteEnd.push(Math.max(0, base + i + len));
      }
      i += len;
    }
    // The merged pieces before the vocabulary lookup (`bpe`, where `encode` would put the unknown token's text in
    // place of a piece the vocabulary lacks): a piece is <unk> by id, as the slow tokenizer's
    // convert_tokens_to_ids does, and keeps its text and span.
    const model = this.model;
    const pieces = model.ignore_merges && model.tokens_to_ids.has(chars) ? [chars] : model.bpe(chars);
    const ids = pieces.map((p) => model.tokens_to_ids.get(p) ?? this.unkId);
    // The pieces spell `chars` one byte per character (unless the file sets a subword prefix or suffix).
    const spelled = pieces.join('') === chars;
    let pos = 0;
    for (let k = 0; k < pieces.length; k++) {
      const p = pieces[k];
      let start = byteStart[0];
      let end = byteEnd[byteEnd.length - 1];
      if (spelled) {
        // trim_offsets: the token's own leading and trailing spaces are not part of its span (a token of spaces
        // only is empty, at its end). Done on bytes, so that an added prefix space (a byte of no character) is
        // trimmed by nothing, as the fast tokenizer's `is_first && add_prefix_space` case does.
        const last = pos + p.length - 1;
        let lead = 0;
        while (lead < p.length && p[lead] === SPACE_CHAR) lead++;
        let trail = 0;
        while (trail < p.length && p[p.length - 1 - trail] === SPACE_CHAR) trail++;
        end = trail < p.length ? byteEnd[last - trail] : byteEnd[last];
        start = lead < p.length ? byteStart[pos + lead] : end;
        pos += p.length;
      }
      out.push({ id: ids[k], token: p, start, end });
    }
  }
}
