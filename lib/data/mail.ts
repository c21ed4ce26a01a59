/**
 * The readable text of a raw email (Subject and body): MIME parsing and decoding by mailparser, HTML to text by
 * html-to-text; what is ours is the choice of text, whitespace clean-up and truncation.
 */
import type { SimpleParserOptions } from 'mailparser';
import { invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';

/**
 * The two libraries, loaded on the first email rather than with the package: they take about 100 ms to load,
 * which every `require('blockprune')` and CLI call would pay otherwise.
 */
let libs: { simpleParser: typeof import('mailparser').simpleParser; htmlToText: (html: string) => string } | undefined;
function mailLibs(): NonNullable<typeof libs> {
  if (libs) return libs;
  const { compile } = require('html-to-text') as typeof import('html-to-text');
  const { simpleParser } = require('mailparser') as typeof import('mailparser');
  libs = { simpleParser, htmlToText: compile(HTML_TO_TEXT) };
  return libs;
}

/**
 * html-to-text's defaults are for people reading mail; a classifier wants the words: no wrapping, no link
 * targets or image sources, headings as written, table cells apart (its default runs them together). The
 * whole document is converted, not only <body>: spam puts text after </html> or inside a <head> left open.
 */
const HTML_TO_TEXT: import('html-to-text').HtmlToTextOptions = {
  wordwrap: false,
  baseElements: { selectors: [], returnDomByDefault: true },
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'title', format: 'skip' },
    { selector: 'style', format: 'skip' },
    { selector: 'script', format: 'skip' },
    { selector: 'hr', format: 'block' }, // a line of dashes is 40 tokens of nothing
    { selector: 'td', format: 'block' },
    { selector: 'th', format: 'block' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
  ],
};

const PARSER_OPTIONS: SimpleParserOptions = {
  skipHtmlToText: true, // converted here, with the options above
  skipTextToHtml: true,
  skipImageLinks: true,
  keepCidLinks: true,
  checksumAlgo: false,
  keepDeliveryStatus: true, // a bounce's machine-readable report is not text anyone wrote
};

/** A text/plain part that is really HTML (common in spam) is converted too. */
const LOOKS_LIKE_HTML = /<html|<body|<br\s*\/?>|<p>|<font|<table/i;
/** Forwarded and bounced messages nest; deeper than this is not worth reading. */
const MAX_NESTING = 3;

/**
 * A string is taken as already-decoded text (what `fs.readFileSync(file, 'utf8')` and the SpamAssassin package
 * give): its UTF-8 bytes are the original bytes, except where decoding failed and left U+FFFD. Those are
 * dropped (BERT drops them too): re-decoded under the part's charset they would become mojibake.
 */
function toBytes(raw: string | Uint8Array): Buffer {
  if (typeof raw === 'string') return Buffer.from(raw.replace(/\uFFFD/g, ''), 'utf8');
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** Everything after the header block: for a message the parser found no part in. */
function rawBody(bytes: Buffer): string {
  const ends = [bytes.indexOf('\n\n'), bytes.indexOf('\r\n\r\n')].filter((i) => i >= 0);
  if (ends.length === 0) return '';
  const at = Math.min(...ends);
  return bytes.subarray(at).toString('utf8');
}

/** Subject and body text of one message, with its embedded messages (forwards, bounces) after it. */
async function messageText(bytes: Buffer, depth: number): Promise<{ subject: string; body: string }> {
  const { simpleParser, htmlToText } = mailLibs();
  const mail = await simpleParser(bytes, PARSER_OPTIONS);
  let body = mail.text ?? '';
  if (body.trim() === '' && typeof mail.html === 'string') body = htmlToText(mail.html);
  else if (LOOKS_LIKE_HTML.test(body)) body = htmlToText(body);
  // A multipart whose boundary never occurs (malformed spam) parses to nothing; its raw body beats no text.
  else if (body.trim() === '' && !mail.html && mail.attachments.length === 0) {
    body = rawBody(bytes);
    if (LOOKS_LIKE_HTML.test(body)) body = htmlToText(body);
  }
  const parts = [body];
  if (depth < MAX_NESTING) {
    for (const a of mail.attachments) {
      if (a.contentType !== 'message/rfc822') continue;
      const inner = await messageText(a.content, depth + 1);
      parts.push(inner.subject, inner.body);
    }
  }
  return { subject: (mail.subject ?? '').trim(), body: parts.filter((p) => p.trim() !== '').join('\n\n') };
}

/**
 * The readable text of a raw RFC 822 email: the decoded Subject, a blank line and the body text (text/plain
 * preferred over HTML; HTML converted to text; attachments left out, but embedded messages read), whitespace
 * collapsed, truncated to `maxChars` UTF-16 code units (never inside a surrogate pair).
 *
 * `raw` is the message's bytes, or a string of already-decoded text (see `toBytes`). Resolves (MIME parsing is
 * asynchronous in mailparser); a message it cannot parse rejects with its error.
 */
export async function emailToText(raw: string | Uint8Array, maxChars = 4000): Promise<string> {
  const { subject, body } = await parts(raw, maxChars);
  return clean((subject ? subject + '\n\n' : '') + body, maxChars);
}

/**
 * The decoded Subject and the readable body of an email, each cleaned as emailToText cleans its text (the body cut
 * to `maxChars`): a summarization pair (subject from body).
 */
export async function emailParts(raw: string | Uint8Array, maxChars = 4000): Promise<{ subject: string; body: string }> {
  const { subject, body } = await parts(raw, maxChars);
  return { subject: clean(subject ?? '', maxChars), body: clean(body, maxChars) };
}

async function parts(raw: string | Uint8Array, maxChars: number): Promise<{ subject?: string; body: string }> {
  if (typeof raw !== 'string' && !(raw instanceof Uint8Array)) throw invalidArg('raw', 'an email as a string or bytes', raw);
  v.positiveInteger('maxChars', maxChars);
  return messageText(toBytes(raw), 0);
}

/** Whitespace collapsed (lines kept, at most one blank line), trimmed, cut to `maxChars` (never inside a surrogate pair). */
function clean(text: string, maxChars: number): string {
  let out = text
    .replace(/\r/g, '')
    .replace(/[ \t\f\v\u00a0]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (out.length > maxChars) {
    let cut = maxChars;
    const code = out.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut--;
    out = out.slice(0, cut);
  }
  return out;
}
