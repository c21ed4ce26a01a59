/**
 * The question-answering defaults (lib/model/qa-options.ts), defined once for the pipeline and the service:
 * HF's values, the window cut to the model, the stride to a third of the window; bad options refused.
 */
import test from 'ava';
import { checkQAOptions, QA_DEFAULTS, qaWindowOptions } from '../../lib/model/qa-options';

test('QA defaults are HF pipeline defaults; windowing follows the model length', (t) => {
  t.deepEqual({ ...QA_DEFAULTS }, { topK: 1, maxAnswerLength: 15, maxSeqLength: 384, docStride: 128, maxQuestionLength: 64, handleImpossibleAnswer: false });
  t.true(Object.isFrozen(QA_DEFAULTS));
  t.deepEqual(qaWindowOptions({}, 512), { maxLength: 384, docStride: 128, maxQuestionLength: 64 });
  t.deepEqual(qaWindowOptions({}, 128), { maxLength: 128, docStride: 42, maxQuestionLength: 64 }, 'stride capped at a third of a short window');
  t.deepEqual(qaWindowOptions({ maxSeqLength: 256, docStride: 10, maxQuestionLength: 20 }, 512), { maxLength: 256, docStride: 10, maxQuestionLength: 20 });
  t.deepEqual(qaWindowOptions({ maxSeqLength: 1000 }, 512), { maxLength: 512, docStride: 128, maxQuestionLength: 64 }, 'never past the model');
});

test('checkQAOptions: each bad option named', (t) => {
  t.deepEqual(checkQAOptions({ topK: 2, docStride: 0 }), { topK: 2, docStride: 0 });
  const bad: Array<[unknown, RegExp]> = [
    [{ topK: 0 }, /options\.topK/],
    [{ maxAnswerLength: 1.5 }, /options\.maxAnswerLength/],
    [{ maxSeqLength: -1 }, /options\.maxSeqLength/],
    [{ maxQuestionLength: '64' }, /options\.maxQuestionLength/],
    [{ docStride: -1 }, /options\.docStride/],
    [{ handleImpossibleAnswer: 1 }, /options\.handleImpossibleAnswer/],
    [{ topk: 1 }, /did you mean "topK"/],
  ];
  for (const [opts, message] of bad) {
    const e = t.throws(() => checkQAOptions(opts), { message }, JSON.stringify(opts));
    t.is((e as Error & { code?: string }).code, 'E_INVALID_ARG');
  }
});
