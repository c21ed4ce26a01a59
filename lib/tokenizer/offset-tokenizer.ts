/**
 * OffsetTokenizer: WordPiece tokens with the span of the original text behind each one (what question
 * answering needs to map a predicted token span back to the context).
 */
import type { Model, Tokenizer } from '@huggingface/tokenizers';
import { isChineseChar, Prenormalizer, PUNCT_RE, REMOVED_CHAR_RE, WHITESPACE_RE } from './prenormalize';

const ASCII_WORD_RE = /^[\x21-\x7e]*$/;

export interface ContextToken {
  id: number;
  token: string;
  /** [start, end) in UTF-16 code units of the original text. */
  start: number;
  end: number;
}

/**
 * BERT pre-tokenization is done here on the original string (specials, cleaning, whitespace, CJK and
 * punctuation splits) and each word is then encoded by the library, so the ids equal the library's for the
 * whole text. Within a word, pieces get exact sub-spans through a per-character normalization map (e.g.
 * "Playing" -> play [0,4), ##ing [4,7); "Ångström" with a precomposed Å keeps exact spans too). If that map
 * cannot be established, every piece of the word gets the whole word's span.
 */
export class OffsetTokenizer {
  private readonly specialSet: Set<string>;

  constructor(
    private readonly tk: Tokenizer,
    /** The tokenizer's WordPiece model (called per pre-token to locate pieces). */
    private readonly model: Model,
    private readonly text: Prenormalizer,
    private readonly unkToken: string,
    rawAddedTokens: readonly string[],
  ) {
    this.specialSet = new Set(rawAddedTokens);
  }

  /** The tokens of `text` (no special tokens added) with their spans. */
  tokens(text: string): ContextToken[] {
    const { cleanText, handleChinese, specialRe } = this.text.rules;
    const out: ContextToken[] = [];
    const emitWord = (start: number, end: number): void => {
      if (end > start) this.encodeWord(text, start, end, out);
    };
    const sections: Array<[number, number, boolean]> = [];
    if (specialRe) {
      const re = new RegExp(specialRe.source, 'g');
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
          if (cp === 32 || cp === 9 || cp === 10 || cp === 13 || (cp >= 11 && cp <= 12 && !cleanText)) {
            emitWord(wordStart, wordEnd);
            wordStart = -1;
          } else if (cp < 32 || cp === 127) {
            if (!cleanText) {
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
        if (cleanText && REMOVED_CHAR_RE.test(ch)) {
          // dropped, but does not end the word (BERT joins around removed characters)
        } else if (WHITESPACE_RE.test(ch)) {
          emitWord(wordStart, wordEnd);
          wordStart = -1;
        } else if ((handleChinese && isChineseChar(cp)) || (PUNCT_RE.test(ch) && this.text.normalizeChar(ch) === ch)) {
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

  /** Encodes text[start, end) (one BERT word, or a special token) and appends its pieces with spans. */
  private encodeWord(text: string, start: number, end: number, out: ContextToken[]): void {
    const word = text.slice(start, end);
    const enc = this.tk.encode(this.text.prenormalize(word), { add_special_tokens: false });
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
    const { cleanText, doLowerCase } = this.text.rules;
    // normalized string + for each normalized UTF-16 unit the original span it came from
    let norm: string;
    let unitStart: number[];
    let unitEnd: number[];
    if (ASCII_WORD_RE.test(word)) {
      norm = doLowerCase ? word.toLowerCase() : word;
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
        if (!(cleanText && REMOVED_CHAR_RE.test(ch))) {
          const n = this.text.normalizeChar(ch);
          for (let u = 0; u < n.length; u++) {
            unitStart.push(base + i);
            unitEnd.push(base + i + len);
          }
          norm += n;
        }
        i += len;
      }
      // The per-character map must reproduce the library's normalization of the whole word.
      const normalizer = this.tk.normalizer;
      const libNorm = normalizer ? normalizer.normalize(this.text.prenormalize(word)) : word;
      if (libNorm !== norm) return null;
    }
    // Library pre-tokens of the normalized word (usually just one), located in `norm`.
    const preTokenizer = this.tk.pre_tokenizer;
    const preTokens = preTokenizer ? preTokenizer.pre_tokenize_text(norm) : [norm];
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
