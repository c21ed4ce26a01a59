/** lib/tokenizer/question-context: question/context windows, stride overlap and offsets on SQuAD. */
import type { BertTokenizer, TokenizerError } from '../../lib/tokenizer/tokenizer';
import { loaders, normalizeSpan, readJson, S, st, tok } from './helpers';

interface SquadQa {
  question: string;
  id: string;
  answers: Array<{ text: string; answer_start: number }>;
  is_impossible?: boolean;
}
interface SquadFile {
  data: Array<{ title: string; paragraphs: Array<{ context: string; qas: SquadQa[] }> }>;
}

function loadSquadQuestions(tk: BertTokenizer, n: number): Array<{ q: SquadQa; context: string; ctxLen: number }> {
  const squad = readJson<SquadFile>(S('data', 'squad', 'dev-v2.0-first5articles.json'));
  const paras = squad.data.flatMap((a) => a.paragraphs).map((p) => ({ p, ctxLen: tk.encodeText(p.context).length }));
  paras.sort((x, y) => y.ctxLen - x.ctxLen);
  const out: Array<{ q: SquadQa; context: string; ctxLen: number }> = [];
  for (const { p, ctxLen } of paras) {
    for (const q of p.qas) {
      if (q.is_impossible || q.answers.length === 0) continue;
      out.push({ q, context: p.context, ctxLen });
      if (out.length >= n) return out;
    }
  }
  return out;
}

st('encodeQuestionContext: windows, stride overlap and exact offsets on SQuAD', (t) => {
  for (const kind of Object.keys(loaders)) {
    const tk = tok(kind);
    const maxLength = 128;
    const docStride = 32;
    const picked = loadSquadQuestions(tk, 25);
    t.true(picked.length >= 25);
    t.true(picked[0].ctxLen > 300, 'long contexts are picked');
    let exact = 0;
    for (const { q, context } of picked) {
      const wins = tk.encodeQuestionContext(q.question, context, { maxLength, docStride });
      const full = tk.tokenizeWithOffsets(context);
      t.deepEqual(full.ids, tk.encodeText(context), 'offset path ids equal plain encoding');
      const qIds = tk.encodeText(q.question);
      const maxCtx = maxLength - qIds.length - 3;
      t.true(wins.length > 1, 'long context needs several windows');
      for (let k = 0; k < wins.length; k++) {
        const w = wins[k];
        t.true(w.inputIds.length <= maxLength);
        t.is(w.inputIds.length, w.tokenTypeIds.length);
        t.is(w.inputIds.length, w.attentionMask.length);
        t.is(w.inputIds.length, w.offsets.length);
        t.deepEqual(w.inputIds.slice(0, w.contextStart), [tk.clsId, ...qIds, tk.sepId]);
        t.is(w.contextEnd, w.inputIds.length - 1);
        t.is(w.inputIds[w.contextEnd], tk.sepId);
        t.deepEqual(w.tokenTypeIds, w.inputIds.map((_, i) => (i < w.contextStart ? 0 : 1)));
        t.true(w.offsets.slice(0, w.contextStart).every((o) => o === null));
        t.is(w.offsets[w.contextEnd], null);
        // the context slice is the full context tokenization at contextTokenOffset
        const n = w.contextEnd - w.contextStart;
        t.deepEqual(w.inputIds.slice(w.contextStart, w.contextEnd), full.ids.slice(w.contextTokenOffset, w.contextTokenOffset + n));
        for (let i = w.contextStart; i < w.contextEnd; i++) {
          const o = w.offsets[i] as [number, number];
          t.deepEqual(o, full.offsets[w.contextTokenOffset + i - w.contextStart]);
          t.true(o[0] >= 0 && o[0] < o[1] && o[1] <= context.length);
          const piece = tk.idToToken(w.inputIds[i]) as string;
          if (piece !== '[UNK]') t.true(normalizeSpan(context.slice(o[0], o[1])).includes(piece.replace(/^##/, '')), `${piece} vs ${context.slice(o[0], o[1])}`);
        }
        if (k < wins.length - 1) t.is(n, maxCtx, 'non-final windows are full');
        if (k > 0) {
          const prev = wins[k - 1];
          t.is(w.contextTokenOffset, prev.contextTokenOffset + maxCtx - docStride);
          // the last docStride context tokens of the previous window open this one
          t.deepEqual(w.inputIds.slice(w.contextStart, w.contextStart + docStride), prev.inputIds.slice(prev.contextEnd - docStride, prev.contextEnd));
          t.deepEqual(w.offsets.slice(w.contextStart, w.contextStart + docStride), prev.offsets.slice(prev.contextEnd - docStride, prev.contextEnd));
        }
      }
      const last = wins[wins.length - 1];
      t.is(last.contextTokenOffset + last.contextEnd - last.contextStart, full.ids.length, 'windows reach the end');

      // the known answer maps to token indices whose span slices back to the answer (or a superset within the same words)
      const ans = q.answers[0];
      const ansStart = ans.answer_start;
      const ansEnd = ansStart + ans.text.length;
      t.is(context.slice(ansStart, ansEnd), ans.text);
      let found = false;
      let isExact = false;
      for (const w of wins) {
        let si = -1;
        let ei = -1;
        for (let i = w.contextStart; i < w.contextEnd; i++) {
          const o = w.offsets[i] as [number, number];
          if (si < 0 && o[1] > ansStart) si = i;
          if (o[0] < ansEnd) ei = i;
        }
        if (si < 0 || ei < si) continue;
        const s0 = (w.offsets[si] as [number, number])[0];
        const e0 = (w.offsets[ei] as [number, number])[1];
        if (s0 > ansStart || e0 < ansEnd) continue; // answer not fully inside this window
        found = true;
        const span = context.slice(s0, e0);
        t.true(span.includes(ans.text));
        // any extra text belongs to the same words (no whitespace added)
        t.false(/\s/.test(context.slice(s0, ansStart)), `prefix of ${JSON.stringify(span)}`);
        t.false(/\s/.test(context.slice(ansEnd, e0)), `suffix of ${JSON.stringify(span)}`);
        if (span === ans.text) isExact = true;
        else t.log(`superset span ${JSON.stringify(span)} for answer ${JSON.stringify(ans.text)}`);
      }
      t.true(found, `answer ${JSON.stringify(ans.text)} is inside some window`);
      if (isExact) exact++;
    }
    t.true(exact >= picked.length - 3, `exact answer spans: ${exact}`);
    t.log(`[${kind}] ${picked.length} SQuAD questions, exact answer spans in windows: ${exact}`);
  }
});

st('encodeQuestionContext: short context, question truncation and errors', (t) => {
  const tk = tok('tokenizer.json');
  const one = tk.encodeQuestionContext('Who?', 'Rollo was a Viking.', { maxLength: 64, docStride: 16 });
  t.is(one.length, 1);
  t.deepEqual(one[0].inputIds, tk.encode('Who?', 'Rollo was a Viking.').inputIds);
  t.is(one[0].contextStart, 4);
  const empty = tk.encodeQuestionContext('Who?', '', { maxLength: 64, docStride: 16 });
  t.is(empty.length, 1);
  t.is(empty[0].contextStart, empty[0].contextEnd);

  const longQ = new Array(80).fill('why').join(' ');
  const e1 = t.throws(() => tk.encodeQuestionContext(longQ, 'some context', { maxLength: 64, docStride: 8 }));
  t.is((e1 as TokenizerError).code, 'E_INVALID_ARG');
  t.regex((e1 as Error).message, /question/);
  // with maxQuestionLength the question is cut and it works
  const cut = tk.encodeQuestionContext(longQ, 'some context', { maxLength: 64, docStride: 8, maxQuestionLength: 20 });
  t.is(cut[0].contextStart, 22);
  const longCtx = new Array(200).fill('word').join(' ');
  const e2 = t.throws(() => tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: 30 }));
  t.is((e2 as TokenizerError).code, 'E_INVALID_ARG');
  const e3 = t.throws(() => tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: -1 }));
  t.is((e3 as TokenizerError).code, 'E_INVALID_ARG');
  // stride 0: windows tile the context exactly
  const tiles = tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: 0 });
  t.is(tiles.reduce((s, w) => s + w.contextEnd - w.contextStart, 0), 200);
});
