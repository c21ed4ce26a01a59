/** `blockprune predict <model-dir>`: classify a text (or a pair), or answer a question from a context. */
import { readFileSync, statSync } from 'node:fs';
import { pipeline } from '../../model/pipelines';
import { BlockpruneError } from '../../runtime/errors';
import * as v from '../../runtime/validate';
import { resolveModel, type HubOptions } from '../../hub/hub';
import { checkModelTask, Command, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { deviceFlag, intFlag, str, UsageError } from '../flags';

interface PredictArgs {
  dir: string;
  text?: string;
  pair?: string;
  question?: string;
  context?: string;
  topK?: number;
  device: string;
  tokenizer?: string;
  hub: HubOptions;
}

export const predictCommand: Command<PredictArgs> = {
  name: 'predict',
  synopsis: 'predict <model-dir>',
  summary: 'classify a text (--text, --pair) or answer a question (--question, --context)',
  help: `Usage: blockprune predict <model-dir|org/name> --text TEXT [--pair TEXT] [--top-k K] [--revision REV] [--offline]
       blockprune predict <model-dir|org/name> --question Q (--context C | --context-file FILE) [--top-k K]

Runs the text-classification or question-answering pipeline on the model directory (its tokenizer: tokenizer.json,
vocab.txt or vocab.json + merges.txt, or --tokenizer DIR). Prints JSON. The flags must fit the model's head
(config.json's architectures): --text on a question-answering model, --question on a classifier, or either on
a bare encoder is refused (exit 2), naming both.

${HUB_HELP}`,
  flags: { text: str, pair: str, question: str, context: str, 'context-file': str, 'top-k': str, tokenizer: str, device: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    const dir = modelDirArg(positionals, 1, 'predict needs exactly one <model-dir>');
    if (values.question !== undefined && values.text !== undefined) throw new UsageError('give either --text or --question, not both');
    if (values.question === undefined && values.text === undefined) throw new UsageError('predict needs --text or --question');
    if (values.question !== undefined && values.context === undefined && values['context-file'] === undefined)
      throw new UsageError('--question needs --context or --context-file');
    if (values.tokenizer !== undefined) v.modelDirectory('--tokenizer', values.tokenizer, 'tokenizer directory');
    let context = values.context as string | undefined;
    if (context === undefined && values['context-file'] !== undefined) {
      const f = String(values['context-file']);
      if (!statSync(f, { throwIfNoEntry: false })?.isFile()) throw new BlockpruneError('E_FILE_NOT_FOUND', `--context-file ${f} is not a readable file`);
      context = readFileSync(f, 'utf8');
    }
    return {
      dir,
      text: values.text as string | undefined,
      pair: values.pair as string | undefined,
      question: values.question as string | undefined,
      context,
      topK: intFlag(values, 'top-k', 1),
      device: deviceFlag(values),
      tokenizer: values.tokenizer as string | undefined,
      hub: hubFlags(values),
    };
  },
  async run(a) {
    // A hub id is resolved (downloaded when needed) first: its config.json says which head the model has.
    const dir = await resolveModel(a.dir, a.hub, '<model-dir>');
    const popts = { device: a.device, tokenizer: a.tokenizer };
    if (a.question !== undefined) {
      checkModelTask(dir, a.dir, 'question-answering', '--question');
      const qa = await pipeline('question-answering', dir, popts);
      console.log(JSON.stringify(await qa({ question: a.question, context: a.context as string }, { topK: a.topK }), null, 2));
      qa.dispose();
    } else {
      checkModelTask(dir, a.dir, 'text-classification', '--text');
      const classify = await pipeline('text-classification', dir, popts);
      const text = a.text as string;
      const input = a.pair === undefined ? text : { text, textPair: a.pair };
      console.log(JSON.stringify(await classify(input, { topK: a.topK }), null, 2));
      classify.dispose();
    }
  },
};
