/**
 * `blockprune frontier`: fine-prune at several lambdas from one dense model and plot accuracy vs speed-up
 * (frontier.ts). Its flags are `train`'s, read by train's own reader, less the single --lambda, resuming and
 * the data-parallel flags, plus --lambdas.
 */
import { join } from 'node:path';
import { resolveModel, type HubOptions } from '../../hub/hub';
import { Command } from '../command';
import { FlagSpec, FlagValues, str, UsageError } from '../flags';
import { checkFrontierOptions, FrontierOptions, runFrontier } from '../frontier';
import * as v from '../../runtime/validate';
import { trainCommand } from './train';

const HELP = `Usage: blockprune frontier --lambdas X,Y,... | --speedups X,Y,... [--shape BxS] [train's options]

Fine-prunes at several regularization lambdas from one dense model and plots accuracy vs speed-up: trains the
dense model once as \`blockprune train\` does (or loads --model), then for each lambda fine-prunes a copy
(distilling from the dense model), compacts it, evaluates it and measures its latency against the dense model.

  --lambdas X,Y,...    the lambdas, e.g. 1,5,20,50 (distinct, >= 0); one folder each: <output>/lambda-X/
                       (pruned/, compact/, masks/, report.json, log.jsonl)
  --speedups X,Y,...   or speed-up targets, e.g. 2,3 (distinct, > 1): each point pruned to a budget
                       (train --target-speedup) at --shape BxS (1x128); folders <output>/speedup-X/
  --output DIR         (out/<task>-frontier) frontier.json, frontier.md (lambda, encoder density, accuracy,
                       parameters, speed-up), frontier.png and frontier.svg (accuracy vs speed-up, the dense
                       model as its own point), dense/
  --task, --data, --model DIR | --hidden/--layers/--heads/--ffn/--family, --epochs N (fine-pruning epochs per
  lambda), --dense-epochs N, --latency-runs N, --preset and every other option of \`blockprune train\` (see
  blockprune train --help), but --lambda, --regularization-final-lambda, --resume, --allow-resume-mismatch and
  the data-parallel flags.`;

/** train's flags the frontier does not take. */
const NOT_HERE = [
  'lambda', 'regularization-final-lambda', 'resume', 'allow-resume-mismatch',
  'nproc', 'nnodes', 'node-rank', 'master-addr', 'master-port', 'rank', 'world-size', 'dist-backend', 'dist-timeout',
];

const FLAGS: FlagSpec = { ...Object.fromEntries(Object.entries(trainCommand.flags).filter(([k]) => !NOT_HERE.includes(k))), lambdas: str, speedups: str };

interface FrontierArgs {
  options: FrontierOptions;
  hub: HubOptions;
}

export const frontierCommand: Command<FrontierArgs> = {
  name: 'frontier',
  synopsis: 'frontier',
  summary: 'fine-prune at several lambdas or speed-up targets from one dense model; table and plot of accuracy vs speed-up',
  help: HELP,
  flags: FLAGS,
  args(flags, argv) {
    const { values } = flags;
    if ((values.lambdas === undefined) === (values.speedups === undefined))
      throw new UsageError('frontier needs --lambdas (e.g. --lambdas 1,5,20,50) or --speedups (e.g. --speedups 2,3), not both');
    const sweep =
      values.lambdas !== undefined
        ? { lambdas: v.flagNumbers('--lambdas', values.lambdas, { min: 0 }) }
        : {
            speedups: v.flagNumbers('--speedups', values.speedups, { min: 1, exclusiveMin: true }),
            ...(values.shape !== undefined ? { shape: v.flagPair('--shape', values.shape, { min: 1 }) } : {}),
          };
    if (values.shape !== undefined && values.speedups === undefined) throw new UsageError('--shape is the shape of --speedups targets');
    const task = typeof values.task === 'string' ? values.task : 'spam';
    const own: FlagValues = { ...values };
    for (const k of ['lambdas', 'speedups', 'shape', 'target-speedup', 'target-latency', 'target-params']) {
      if (values[k] !== undefined && k.startsWith('target-')) throw new UsageError(`--${k}: the frontier sweeps --speedups (one target per point)`);
      delete own[k];
    }
    if (values.output === undefined && values['output-dir'] === undefined) own.output = join('out', `${task}-frontier`);
    // train's reader checks every other flag (and a --config file), naming the flag.
    const { job, hub } = trainCommand.args({ ...flags, values: own }, argv);
    const options: FrontierOptions = { ...(job as FrontierOptions), ...sweep };
    // What is left to refuse came from a --config file (its lambda, resume...), or is --lambdas itself.
    checkFrontierOptions(options, (k) => (k === 'lambdas' || k === 'speedups' ? `--${k}` : `${k} in --config ${values.config}`));
    return { options, hub };
  },
  async run({ options, hub }) {
    // A hub id becomes its cache directory first (downloaded when needed), with --revision / --offline.
    const model = options.model === undefined ? undefined : await resolveModel(options.model, hub, '--model');
    const teacher = options.teacher === undefined || options.teacher === 'none' ? options.teacher : await resolveModel(options.teacher, hub, '--teacher');
    await runFrontier({ ...options, model, teacher });
  },
};
