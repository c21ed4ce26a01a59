/**
 * The house rules for lib/, checked in CI (scripts/test.sh runs `npm run check:deps`).
 *
 * Folders are layers; an import may only point down:
 *   cli  ->  training  ->  pruning, data  ->  model  ->  tokenizer  ->  runtime
 *   cli  ->  serve, report                ->  model
 *   model (and everything above it)  ->  hub  ->  runtime   (hub ids and the Hugging Face cache)
 * index.ts (the public API) may import anything. The model knows nothing of pruning or training: they add
 * their methods to BertModel from their own folders.
 */
const LAYERS = ['runtime', 'hub', 'tokenizer', 'model', 'pruning', 'data', 'report', 'serve', 'training', 'cli'];
// What each folder may import besides itself (and node built-ins / packages).
const ALLOWED = {
  runtime: [],
  hub: ['runtime'],
  tokenizer: ['runtime'],
  model: ['hub', 'tokenizer', 'runtime'],
  pruning: ['model', 'hub', 'tokenizer', 'runtime'],
  data: ['model', 'hub', 'tokenizer', 'runtime'],
  report: ['model', 'pruning', 'hub', 'runtime'],
  serve: ['model', 'hub', 'tokenizer', 'runtime'],
  training: ['pruning', 'data', 'model', 'hub', 'tokenizer', 'runtime'],
  cli: ['training', 'pruning', 'data', 'report', 'serve', 'model', 'hub', 'tokenizer', 'runtime'],
};

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, within a folder or across folders.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-lib-to-outside',
      severity: 'error',
      comment: 'The library does not reach into scripts/ or test/.',
      from: { path: '^lib/' },
      to: { path: '^(scripts|test)/' },
    },
    {
      name: 'every-file-in-a-folder',
      severity: 'error',
      comment: 'Only the public API (lib/index.ts) sits at the top of lib/; everything else lives in a concept folder.',
      from: { path: '^lib/[^/]+\\.ts$', pathNot: '^lib/index\\.ts$' },
      to: {},
    },
    ...LAYERS.map((layer) => ({
      name: `layer-${layer}`,
      severity: 'error',
      comment: `lib/${layer}/ may import only ${ALLOWED[layer].length ? ALLOWED[layer].join(', ') : 'nothing else in lib'} (dependencies point one way).`,
      from: { path: `^lib/${layer}/` },
      to: { path: '^lib/', pathNot: [`^lib/${layer}/`, ...ALLOWED[layer].map((l) => `^lib/${l}/`)] },
    })),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|build|node_modules)/' },
  },
};
