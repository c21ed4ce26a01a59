/**
 * BERT's text rules (BasicTokenizer character classes, lowercasing, accents) and the rewrite that makes
 * tokenizers.js 0.2.0 tokenize like transformers 4.4.2's slow BertTokenizer (see `Prenormalizer.prenormalize`).
 */

/** Characters BERT's `_clean_text` drops: NUL, U+FFFD and category C* except \t \n \r. */
export const REMOVED_CHAR_RE = /^(?:[\0\uFFFD]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}])$/u;
const REMOVED_CHARS_G = /[\0\uFFFD]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}]/gu;
/** BERT `_is_punctuation`: ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*. */
export const PUNCT_RE = /^[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]$/u;
export const WHITESPACE_RE = /^\s$/;
/** CJK blocks outside the BMP (BERT `_is_chinese_char`); tokenizers.js only checks UTF-16 units. */
const ASTRAL_CJK_G = /[\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu;
/** Text made only of these needs no pre-normalization. */
const PLAIN_TEXT_RE = /^[\t\n\r\x20-\x7e]*$/;

export function isChineseChar(cp: number): boolean {
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

/** The BertNormalizer settings and the raw-text special tokens, as BERT applies them. */
export interface TextRules {
  doLowerCase: boolean;
  cleanText: boolean;
  handleChinese: boolean;
  stripAccents: boolean;
  /** Raw-text special tokens (added tokens with normalized=false), longest first; null when none. */
  specialRe: RegExp | null;
}

/**
 * The rules of a BertNormalizer config (null: another normalizer, none of BERT's rules) and the raw-text
 * added tokens (longest first). HF's defaults: clean_text and handle_chinese_chars on; strip_accents follows
 * lowercase unless set.
 */
export function textRules(bertNormalizer: Record<string, unknown> | null, rawAddedTokens: readonly string[]): TextRules {
  const n = bertNormalizer;
  const doLowerCase = n ? n.lowercase === true : false;
  return {
    doLowerCase,
    cleanText: n ? n.clean_text !== false : false,
    handleChinese: n ? n.handle_chinese_chars !== false : false,
    stripAccents: n ? (doLowerCase ? n.strip_accents !== false : n.strip_accents === true) : false,
    specialRe: rawAddedTokens.length ? new RegExp(rawAddedTokens.map(escapeRegExp).join('|'), 'g') : null,
  };
}

export class Prenormalizer {
  constructor(readonly rules: TextRules) {}

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
  prenormalize(text: string): string {
    if (PLAIN_TEXT_RE.test(text)) return text;
    const { specialRe } = this.rules;
    if (!specialRe) return this.prenormSection(text);
    let out = '';
    let last = 0;
    const re = new RegExp(specialRe.source, 'g');
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      out += this.prenormSection(text.slice(last, m.index)) + m[0];
      last = m.index + m[0].length;
    }
    return out + this.prenormSection(text.slice(last));
  }

  /** Lowercasing / accent stripping of one character, as the BertNormalizer does it. */
  normalizeChar(ch: string): string {
    let n = ch;
    if (this.rules.doLowerCase) n = (n === '\u03A3' ? '\u03C3' : n).toLowerCase();
    if (this.rules.stripAccents) n = n.normalize('NFD').replace(/\p{Mn}/gu, '');
    return n;
  }

  private prenormSection(s: string): string {
    if (s.length === 0) return s;
    const { doLowerCase, cleanText, handleChinese, specialRe } = this.rules;
    let c = s;
    if (doLowerCase) c = c.replace(/\u03A3/g, '\u03C3');
    if (cleanText) c = c.replace(REMOVED_CHARS_G, '');
    if (handleChinese) c = c.replace(ASTRAL_CJK_G, ' $& ');
    if (cleanText && specialRe && c.length !== s.length) {
      const re = new RegExp(specialRe.source, 'g');
      c = c.replace(re, (tok: string, off: number, str: string) => {
        const boundedLeft = off === 0 || WHITESPACE_RE.test(str[off - 1]);
        const boundedRight = off + tok.length === str.length || WHITESPACE_RE.test(str[off + tok.length]);
        if (!doLowerCase && boundedLeft && boundedRight) return tok;
        return tok[0] + '\u200b' + tok.slice(1);
      });
    }
    return c;
  }
}
