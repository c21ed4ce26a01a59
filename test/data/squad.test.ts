/** lib/data/squad: SQuAD files (the shared SQuAD 2.0 sample and hand-made bad entries). */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSquad } from '../../lib/data/squad';
import { tempDir } from '../helpers';
import { count, rejectsWith, shared, SQUAD_DEV, withShared } from './helpers';

withShared(SQUAD_DEV)('SQuAD 2.0 (first 5 articles): 1,407 questions, 702 impossible; dropImpossible keeps 705', async (t) => {
  const file = shared(SQUAD_DEV);
  const r = await loadSquad(file);
  t.true(r.version2);
  t.is(r.examples.length, 1407);
  t.is(count(r.examples, (e) => e.isImpossible), 702);
  t.true(r.examples.every((e) => (e.isImpossible ? e.answers.length === 0 : e.answers.length > 0)));
  t.true(r.examples.every((e) => e.answers.every((a) => e.context.slice(a.start, a.start + a.text.length) === a.text)));
  t.is(r.examples[0].title, 'Normans');
  const v1 = await loadSquad(file, { dropImpossible: true });
  t.is(v1.examples.length, 705);
  t.is(v1.dropped, 702);
  t.is((await loadSquad(file, { limit: 3 })).examples.length, 3);
  // Read as v1.1: impossible questions are invalid there
  await rejectsWith(t, loadSquad(file, { version2: false }), 'E_BAD_DATA', file, 'qas[');
  const asV1 = await loadSquad(file, { version2: false, skipInvalid: true });
  t.is(asV1.examples.length, 705);
  t.is(asV1.skipped, 702);
});

test('bad SQuAD entries name the JSON path; a mismatched answer span is invalid', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'squad.json');
  const context = 'Denver Broncos won Super Bowl 50 in 2016.';
  writeFileSync(
    file,
    JSON.stringify({
      version: '1.1',
      data: [
        {
          title: 'SB',
          paragraphs: [
            {
              context,
              qas: [
                { id: 'a', question: 'Who won?', answers: [{ text: 'Denver Broncos', answer_start: 0 }] },
                { id: 'b', question: 'When?', answers: [{ text: '2016', answer_start: 3 }] },
                { id: 'c', question: 'Which?', answers: [{ text: 'Super Bowl 50', answer_start: 19 }] },
                { id: 'a', question: 'Again?', answers: [{ text: 'Denver', answer_start: 0 }] },
              ],
            },
          ],
        },
      ],
    }),
  );
  await rejectsWith(t, loadSquad(file), 'E_BAD_DATA', file, 'data[0].paragraphs[0].qas[1]', 'does not match');
  const r = await loadSquad(file, { skipInvalid: true });
  t.false(r.version2);
  t.deepEqual(
    r.examples.map((e) => e.id),
    ['a', 'c'],
  );
  t.is(r.skipped, 2);
  t.true(r.skippedReasons[1].includes('duplicate'));
  const broken = join(tmp.path, 'broken.json');
  writeFileSync(broken, '{"data": [');
  await rejectsWith(t, loadSquad(broken), 'E_BAD_DATA', broken, 'invalid JSON');
});
