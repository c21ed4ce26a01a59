/**
 * Special (added) tokens in raw text, split out as transformers 4.4.2's slow `PreTrainedTokenizer.tokenize`
 * does (`split_on_tokens`), on [start, end) ranges of the original text so that offsets survive. Used by the
 * byte-level BPE and Unigram tokenizers; the WordPiece path keeps the library's own split (prenormalize.ts).
 */

/** Python's `str.isspace()` characters (what `strip()` removes); JS's `\s` differs (it has U+FEFF, lacks U+001C-1F, U+0085). */
export const PY_SPACE_CLASS = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RE = new RegExp(`^[${PY_SPACE_CLASS}]$`);
const PY_BLANK_RE = new RegExp(`^[${PY_SPACE_CLASS}]*$`);

export interface AddedTokenSpec {
  content: string;
  id: number;
  /** Eats the whitespace on its left (RoBERTa's `<mask>`). */
  lstrip: boolean;
  /** Eats the whitespace on its right. */
  rstrip: boolean;
}

/** A range of the original text: plain text, or one added token. */
export interface TextSection {
  start: number;
  end: number;
  token?: AddedTokenSpec;
}

/** The added tokens of a checked tokenizer.json, in the order the slow tokenizer splits on them (sorted). */
export function addedTokenSpecs(addedTokens: ReadonlyArray<Record<string, unknown>>): AddedTokenSpec[] {
  const specs = addedTokens
    .filter((t) => typeof t.content === 'string' && t.content !== '')
    .map((t) => ({ content: t.content as string, id: t.id as number, lstrip: t.lstrip === true, rstrip: t.rstrip === true }));
  // transformers keeps `unique_no_split_tokens` sorted, and splits on them one after the other in that order.
  return specs.sort((a, b) => (a.content < b.content ? -1 : a.content > b.content ? 1 : 0));
}

/**
 * The sections of `text`: added tokens, and the text between them with the whitespace that an lstrip/rstrip
 * token eats removed. Text made only of whitespace has no sections (the slow `tokenize` returns [] when
 * `text.strip()` is empty; the fast tokenizer would give its spaces as tokens).
 */
export function splitAddedTokens(text: string, tokens: readonly AddedTokenSpec[]): TextSection[] {
  if (PY_BLANK_RE.test(text)) return [];
  let sections: TextSection[] = [{ start: 0, end: text.length }];
  for (const tok of tokens) {
    if (!text.includes(tok.content)) continue;
    const next: TextSection[] = [];
    for (const s of sections) {
      if (s.token || text.slice(s.start, s.end) === tok.content) next.push(s.token ? s : { ...s, token: tok });
      else splitOnToken(text, s, tok, next);
    }
    sections = next;
  }
  // A section whose text is an added token is that token (the slow tokenizer does not split it further).
  const byContent = new Map(tokens.map((t) => [t.content, t]));
  return sections.map((s) => (s.token ? s : { ...s, token: byContent.get(text.slice(s.start, s.end)) }));
}

/** transformers 4.4.2 `split_on_token` for an AddedToken, on the range `s` of `text`. */
function splitOnToken(text: string, s: TextSection, tok: AddedTokenSpec, out: TextSection[]): void {
  const at: number[] = [];
  for (let i = text.indexOf(tok.content, s.start); i >= 0 && i + tok.content.length <= s.end; i = text.indexOf(tok.content, i + tok.content.length)) at.push(i);
  if (at.length === 0) {
    out.push(s);
    return;
  }
  const L = tok.content.length;
  const n = at.length + 1;
  for (let i = 0; i < n; i++) {
    let a = i === 0 ? s.start : at[i - 1] + L;
    let b = i === n - 1 ? s.end : at[i];
    if (tok.rstrip && i > 0) while (a < b && PY_SPACE_RE.test(text[a])) a++;
    if (tok.lstrip && i < n - 1) while (b > a && PY_SPACE_RE.test(text[b - 1])) b--;
    if (b > a) out.push({ start: a, end: b });
    if (i < n - 1) out.push({ start: at[i], end: at[i] + L, token: tok });
  }
}
