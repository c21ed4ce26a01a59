/** The readable text of a raw email (Subject and body, MIME decoded, HTML converted). */

interface ContentType {
  type: string;
  params: Record<string, string>;
}

function parseHeaders(block: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | null = null;
  let value = '';
  const flush = (): void => {
    if (name !== null && !out.has(name)) out.set(name, value.trim());
  };
  for (const line of block.split(/\r?\n/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && name !== null) {
      value += ' ' + line.trim();
      continue;
    }
    flush();
    const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
    if (m) {
      name = m[1].toLowerCase();
      value = m[2];
    } else name = null;
  }
  flush();
  return out;
}

function splitMessage(raw: string): { headers: Map<string, string>; body: string } {
  if (/^\r?\n/.test(raw)) return { headers: new Map(), body: raw.replace(/^\r?\n/, '') };
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) return { headers: parseHeaders(raw), body: '' };
  return { headers: parseHeaders(raw.slice(0, m.index)), body: raw.slice(m.index + m[0].length) };
}

function parseContentType(v: string | undefined): ContentType {
  if (!v) return { type: 'text/plain', params: {} };
  const semi = v.indexOf(';');
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase() || 'text/plain';
  const params: Record<string, string> = {};
  const re = /;\s*([\w.-]+)\s*=\s*(?:"([^"]*)"|([^;\s]*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v)) !== null) params[m[1].toLowerCase()] = m[2] ?? m[3] ?? '';
  return { type, params };
}

/** Bytes of a string whose chars are bytes (latin1); other chars are UTF-8 encoded. */
function binaryBytes(s: string): Uint8Array {
  if (/^[\x00-\xff]*$/.test(s)) return Buffer.from(s, 'latin1');
  return Buffer.from(s, 'utf8');
}

function decodeBytes(bytes: Uint8Array, charset: string | undefined): string {
  const cs = (charset || 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(cs === 'us-ascii' || cs === 'ascii' ? 'windows-1252' : cs).decode(bytes);
  } catch {
    return Buffer.from(bytes).toString('latin1');
  }
}

function decodeQuotedPrintable(s: string, charset: string | undefined): string {
  const joined = s.replace(/=\r?\n/g, '');
  if (!/=[0-9A-Fa-f]{2}/.test(joined)) return joined;
  const out: number[] = [];
  const bytes = binaryBytes(joined);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x3d && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out.push(parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16));
      i += 2;
    } else out.push(b);
  }
  return decodeBytes(Uint8Array.from(out), charset);
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102));
}

/** RFC 2047 encoded words (=?charset?B|Q?...?=) in a header value. */
function decodeHeaderValue(v: string): string {
  return v
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_m, cs: string, enc: string, data: string) => {
      if (enc.toLowerCase() === 'b') return decodeBytes(Buffer.from(data, 'base64'), cs);
      return decodeQuotedPrintable(data.replace(/_/g, ' '), cs);
    });
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®' };

function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(br|\/p|\/div|\/tr|\/h\d|\/li|p|div|tr|li)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ';
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    });
}

function decodePartBody(body: string, headers: Map<string, string>, ct: ContentType): string {
  const cte = (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  if (cte === 'base64') return decodeBytes(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), ct.params.charset);
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body, ct.params.charset);
  return body;
}

/** Readable text parts of a MIME entity: plain parts, and HTML parts (already converted to text). */
function collectText(headers: Map<string, string>, body: string, depth: number, out: { plain: string[]; html: string[] }): void {
  const ct = parseContentType(headers.get('content-type'));
  if (ct.type.startsWith('multipart/') && ct.params.boundary && depth < 6) {
    const delim = '--' + ct.params.boundary;
    const parts: string[] = [];
    let current: string[] | null = null;
    for (const line of body.split(/\r?\n/)) {
      const trimmed = line.trimEnd();
      if (trimmed === delim || trimmed === delim + '--') {
        if (current) parts.push(current.join('\n'));
        current = trimmed === delim ? [] : null;
        if (trimmed !== delim) break;
        continue;
      }
      if (current) current.push(line);
    }
    if (current) parts.push(current.join('\n'));
    if (parts.length === 0) {
      out.plain.push(body); // broken multipart: keep the raw body
      return;
    }
    for (const part of parts) {
      const m = splitMessage(part);
      collectText(m.headers, m.body, depth + 1, out);
    }
    return;
  }
  if (ct.type === 'message/rfc822' && depth < 6) {
    const m = splitMessage(body);
    const subject = m.headers.get('subject');
    if (subject) out.plain.push(decodeHeaderValue(subject));
    collectText(m.headers, m.body, depth + 1, out);
    return;
  }
  const disposition = (headers.get('content-disposition') ?? '').toLowerCase();
  if (disposition.startsWith('attachment')) return;
  if (ct.type === 'text/html') out.html.push(htmlToText(decodePartBody(body, headers, ct)));
  else if (ct.type === 'text/plain' || ct.type === 'text' || ct.type.startsWith('multipart/')) {
    const text = decodePartBody(body, headers, ct);
    if (/<html|<body|<br\s*\/?>|<p>|<font|<table/i.test(text)) out.html.push(htmlToText(text));
    else out.plain.push(text);
  }
}

/**
 * The readable text of a raw RFC 822 email: decoded Subject, blank line, body text (see `loadSpamAssassin`),
 * truncated to `maxChars` code units (never inside a surrogate pair).
 */
export function emailToText(raw: string, maxChars = 4000): string {
  const { headers, body } = splitMessage(raw);
  const out = { plain: [] as string[], html: [] as string[] };
  collectText(headers, body, 0, out);
  const plain = out.plain.join('\n\n');
  const text = plain.trim() ? plain : out.html.join('\n\n');
  const subject = decodeHeaderValue(headers.get('subject') ?? '').trim();
  const full = (subject ? subject + '\n\n' : '') + text;
  let clean = full
    .replace(/\r/g, '')
    .replace(/[ \t\f\v\u00a0]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (clean.length > maxChars) {
    let cut = maxChars;
    const code = clean.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut--;
    clean = clean.slice(0, cut);
  }
  return clean;
}
