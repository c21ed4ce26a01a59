/** lib/data/mail: emailToText on hand-made messages, a grid of MIME layouts and encodings, and broken input. */
import test from 'ava';
import { emailToText } from '../../lib/data/mail';
import { rng } from '../../lib/data/rng';

test('emailToText: headers dropped, MIME parts decoded, plain text preferred, HTML stripped', async (t) => {
  const raw = [
    'From someone@example.com  Mon Jan  1 00:00:00 2002',
    'Received: from x by y',
    '    continued header line',
    'Subject: =?utf-8?B?SGVsbG8gV8O2cmxk?=',
    'Content-Type: multipart/alternative; boundary="XYZ"',
    '',
    'preamble',
    '--XYZ',
    'Content-Type: text/plain; charset=iso-8859-1',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Caf=E9 au lait, long line =',
    'joined.',
    '--XYZ',
    'Content-Type: text/html',
    '',
    '<html><body><p>HTML version</p></body></html>',
    '--XYZ--',
    'epilogue',
  ].join('\n');
  t.is(await emailToText(raw), 'Hello Wörld\n\nCafé au lait, long line joined.');
  const html = 'Subject: Offer\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n' + Buffer.from('<html><style>p{}</style><b>Buy</b>&nbsp;now &amp; save</html>').toString('base64');
  t.is(await emailToText(html), 'Offer\n\nBuy now & save');
  t.is(await emailToText('Subject: x\n\n' + 'y'.repeat(100), 10), 'x\n\nyyyyyyy');
});

test('emailToText: what the old hand-written parser did on purpose still holds', async (t) => {
  const part = (type: string, body: string) => `Content-Type: ${type}\n\n${body}`;
  // Table cells stay apart (html-to-text runs them together by default).
  t.regex(await emailToText(part('text/html', '<table><tr><td>alpha</td><td>beta</td></tr></table>')), /alpha\s+beta/);
  // A text/plain part that is HTML is converted; link targets and images are not text.
  t.is(await emailToText(part('text/plain', '<html><body>Click <a href="http://x.example/">here</a><img src="y.gif"></body></html>')), 'Click here');
  // A bounce: the delivery report is left out, the returned message is read.
  const bounce = [
    'Subject: Undeliverable',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
    '',
    '--B',
    'Content-Type: text/plain',
    '',
    'Your message was not delivered.',
    '--B',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.com',
    '--B',
    'Content-Type: message/rfc822',
    '',
    'Subject: Cheap pills',
    'Content-Type: text/plain',
    '',
    'Buy now.',
    '--B--',
  ].join('\n');
  const text = await emailToText(bounce);
  t.is(text, 'Undeliverable\n\nYour message was not delivered.\n\nCheap pills\n\nBuy now.');
  // A multipart whose boundary never occurs still gives its body.
  t.regex(await emailToText('Subject: s\nContent-Type: multipart/alternative; boundary="X"\n\n--Y\nContent-Type: text/plain\n\nthe offer'), /the offer/);
  // A string is decoded text: U+FFFD (a byte lost when it was decoded) is dropped, not re-decoded into mojibake.
  const lost = await emailToText('Subject: a\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nprice \uFFFD100');
  t.is(lost, 'a\n\nprice 100');
  // Bytes are decoded with the part's charset.
  const latin1 = Buffer.concat([Buffer.from('Subject: b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\ncaf'), Buffer.from([0xe9])]);
  t.is(await emailToText(latin1), 'b\n\ncafé');
});

test('emailToText: bad arguments reject with E_INVALID_ARG naming them', async (t) => {
  const e1 = (await t.throwsAsync(emailToText(42 as unknown as string))) as Error & { code?: string };
  t.is(e1.code, 'E_INVALID_ARG');
  t.regex(e1.message, /raw/);
  const e2 = (await t.throwsAsync(emailToText('Subject: x\n\ny', 0))) as Error & { code?: string };
  t.is(e2.code, 'E_INVALID_ARG');
  t.regex(e2.message, /maxChars/);
});

// ---------------------------------------------------------------------------------------------------------
// A grid of layouts x content types x charsets x transfer encodings, as bytes and as decoded strings
// ---------------------------------------------------------------------------------------------------------

type Encoding = '8bit' | 'quoted-printable' | 'base64';

function quotedPrintable(bytes: Buffer): string {
  let out = '';
  let line = 0;
  for (const b of bytes) {
    const s = (b >= 33 && b <= 126 && b !== 61) || b === 32 ? String.fromCharCode(b) : '=' + b.toString(16).toUpperCase().padStart(2, '0');
    if (line + s.length > 72) {
      out += '=\n';
      line = 0;
    }
    out += s;
    line += s.length;
  }
  return out;
}

function charsetBytes(text: string, charset: string): Buffer {
  return Buffer.from(text, charset === 'utf-8' ? 'utf8' : 'latin1');
}

function part(type: string, text: string, charset: string, enc: Encoding): Buffer {
  const bytes = charsetBytes(text, charset);
  const body = enc === '8bit' ? bytes : Buffer.from(enc === 'base64' ? bytes.toString('base64').replace(/.{76}/g, '$&\n') : quotedPrintable(bytes));
  return Buffer.concat([Buffer.from(`Content-Type: ${type}; charset=${charset}\nContent-Transfer-Encoding: ${enc}\n\n`), body]);
}

function multipart(type: string, boundary: string, parts: Buffer[]): Buffer {
  const chunks: Buffer[] = [Buffer.from(`Content-Type: multipart/${type}; boundary="${boundary}"\n\npreamble\n`)];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\n`), p, Buffer.from('\n'));
  chunks.push(Buffer.from(`--${boundary}--\n`));
  return Buffer.concat(chunks);
}

const ATTACHMENT = Buffer.from('Content-Type: application/octet-stream; name="a.bin"\nContent-Disposition: attachment; filename="a.bin"\nContent-Transfer-Encoding: base64\n\n' + Buffer.from('SECRETATTACHMENT').toString('base64'));

/** The body with its marker, as text/plain, text/html, or HTML sent as text/plain. */
function content(kind: string, marker: string): [string, string] {
  if (kind === 'plain') return ['text/plain', `Hello café ${marker} end`];
  const html = `<html><head><title>t</title></head><body><p>Hello <b>café</b></p><table><tr><td>${marker}</td><td>end</td></tr></table></body></html>`;
  return [kind === 'html' ? 'text/html' : 'text/plain', html];
}

const LAYOUTS: Record<string, (p: Buffer) => Buffer> = {
  single: (p) => p,
  alternative: (p) => multipart('alternative', 'alt', [p, Buffer.from('Content-Type: text/html\n\n<p>other version</p>')]),
  attachment: (p) => multipart('mixed', 'mix', [p, ATTACHMENT]),
  nested: (p) => multipart('mixed', 'outer', [multipart('alternative', 'inner', [p]), ATTACHMENT]),
  forwarded: (p) =>
    multipart('mixed', 'fwd', [Buffer.from('Content-Type: text/plain\n\nsee below'), Buffer.concat([Buffer.from('Content-Type: message/rfc822\n\nSubject: inner\n'), p])]),
};

function messages(): Array<{ name: string; bytes: Buffer; marker: string; accents: boolean }> {
  const out = [];
  let n = 0;
  for (const layout of Object.keys(LAYOUTS))
    for (const kind of ['plain', 'html', 'html-as-plain'])
      for (const charset of ['utf-8', 'iso-8859-1', 'windows-1252'])
        for (const enc of ['8bit', 'quoted-printable', 'base64'] as const) {
          const marker = `zebra${n++}`;
          const [type, text] = content(kind, marker);
          const subject = n % 2 ? `Subject: offer ${marker}\n` : `Subject: =?utf-8?Q?offer_${marker}?=\n`;
          const bytes = Buffer.concat([Buffer.from('From: a@example.com\n' + subject), LAYOUTS[layout](part(type, text, charset, enc))]);
          // A decoded string holds "é" only when the bytes were UTF-8 or the part was transfer-encoded.
          out.push({ name: `${layout}/${kind}/${charset}/${enc}`, bytes, marker, accents: charset === 'utf-8' || enc !== '8bit' });
        }
  return out;
}

test('emailToText over 135 layouts x types x charsets x encodings, as bytes and as strings: no text lost, attachments left out', async (t) => {
  const losses: string[] = [];
  let cases = 0;
  for (const m of messages()) {
    for (const input of [m.bytes, m.bytes.toString('utf8')]) {
      cases++;
      const text = await emailToText(input);
      const asBytes = typeof input !== 'string';
      const where = `${m.name} (${asBytes ? 'bytes' : 'string'})`;
      if (!text.startsWith(`offer ${m.marker}\n\n`)) losses.push(`${where}: subject missing in ${JSON.stringify(text.slice(0, 80))}`);
      if (!new RegExp(`\\b${m.marker}\\s+end\\b`).test(text)) losses.push(`${where}: body missing in ${JSON.stringify(text)}`);
      if ((asBytes || m.accents) && !text.includes('café')) losses.push(`${where}: "café" not decoded in ${JSON.stringify(text)}`);
      if (text.includes('SECRETATTACHMENT') || text.includes('<td>')) losses.push(`${where}: attachment or markup in ${JSON.stringify(text)}`);
    }
  }
  t.log(`${cases} cases, ${losses.length} losses`);
  t.is(cases, 270);
  t.deepEqual(losses, []);
});

test('emailToText on truncated and corrupted messages: a string or an Error, never a crash', async (t) => {
  const random = rng(13);
  let cases = 0;
  let texts = 0;
  const notErrors: unknown[] = [];
  const inputs: Array<Buffer | string> = ['', '\n\n', 'Subject:', 'Content-Type: multipart/mixed; boundary=', '\uFFFD'.repeat(50)];
  for (const m of messages()) {
    inputs.push(m.bytes.subarray(0, Math.floor(random() * m.bytes.length)));
    const flipped = Buffer.from(m.bytes);
    for (let k = 0; k < 20; k++) flipped[Math.floor(random() * flipped.length)] = Math.floor(random() * 256);
    inputs.push(flipped, flipped.toString('latin1'));
  }
  inputs.push(Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))));
  // Deeper than MAX_NESTING forwarded messages.
  let deep: Buffer = Buffer.from('Content-Type: text/plain\n\ninnermost');
  for (let k = 0; k < 8; k++) deep = multipart('mixed', `b${k}`, [Buffer.from(`Content-Type: text/plain\n\nlevel ${k}`), Buffer.concat([Buffer.from('Content-Type: message/rfc822\n\n'), deep])]);
  inputs.push(deep);
  for (const input of inputs) {
    cases++;
    try {
      if (typeof (await emailToText(input)) === 'string') texts++;
    } catch (e) {
      if (!(e instanceof Error)) notErrors.push(e);
    }
  }
  t.log(`${cases} broken inputs: ${texts} gave text, ${cases - texts - notErrors.length} rejected with an Error, ${notErrors.length} otherwise`);
  t.is(cases, 5 + 135 * 3 + 2);
  t.deepEqual(notErrors, []);
  t.regex(await emailToText(deep), /level 7/, 'the outer levels of a deep nest are read');
});
