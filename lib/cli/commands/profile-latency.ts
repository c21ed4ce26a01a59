/** `blockprune profile-latency <model-dir>`: the latency model of the compact network on this machine (issue 17). */
import { evalPiecewise } from '../../pruning/cost-model';
import { loadOrProfileLatency, type LatencyProfile } from '../../pruning/latency-profile';
import * as v from '../../runtime/validate';
import { Command } from '../command';
import { bool, str, UsageError } from '../flags';
import { countProgress } from '../progress';
import type { ProgressDisplay } from '../../runtime/progress';

interface ProfileLatencyArgs {
  dir: string;
  batch: number;
  seq: number;
  force: boolean;
  json: boolean;
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

/** The fitted tables at their breakpoints: a layer's cost of its kept heads and units, and the cost per head / unit there. */
function formatProfile(p: LatencyProfile, path: string, cached: boolean, reason?: string): string {
  const g = p.geometry;
  const table = (name: string, f: LatencyProfile['heads'], per: string) =>
    `  ${name}:\n` +
    f.x
      .filter((x) => x >= 1)
      .map((x) => `    ${String(x).padStart(5)} ${per}: ${evalPiecewise(f, x).toFixed(3).padStart(8)} ms (${((1000 * evalPiecewise(f, x)) / x).toFixed(x > 64 ? 2 : 1)} us per ${per.replace(/s$/, '')})`)
      .join('\n');
  return [
    `latency profile of ${g.family} (${g.task}): ${g.layers} layers, ${g.heads} heads of ${g.headDim}, FFN ${g.intermediate}, hidden ${g.hidden}, vocabulary ${g.vocab}`,
    `  at ${p.batch}x${p.seq}, ${p.dtype}, ${p.threads} threads, ${p.kernels} kernels; ${cached ? 'cached' : `measured now (${reason}) in ${p.seconds.toFixed(1)} s`}: ${path}`,
    `  constant (embeddings, every layer's fixed part, pooler and head): ${p.constant.toFixed(3)} ms`,
    table('per layer, its kept heads', p.heads, 'heads'),
    table('per layer, its kept FFN units', p.units, 'units'),
    `  dense: measured ${p.dense.ms.toFixed(2)} ms, predicted ${p.dense.predictedMs.toFixed(2)} ms (${pct((p.dense.predictedMs - p.dense.ms) / p.dense.ms)})`,
    `  fit over ${p.grid.length} models (${p.runs} runs x ${p.rounds} alternating rounds, medians): worst error ${(100 * p.maxFitError).toFixed(1)}%`,
    // The costs add up within a few percent on a steady machine (README, Performance): more is load that came and went.
    ...(p.maxFitError > 0.1 ? ['  warning: the machine was busy while measuring (the fit misses a model by more than 10%): measure again with --force when it is quiet'] : []),
  ].join('\n');
}

export const profileLatencyCommand: Command<ProfileLatencyArgs> = {
  name: 'profile-latency',
  synopsis: 'profile-latency <dir>',
  summary: "time the model's compact forms on this machine and fit a latency model (for --target-latency)",
  help: `Usage: blockprune profile-latency <model-dir> [--shape 1x128] [--force] [--json]

Builds random-weight models of the model's geometry with fewer heads and FFN units per layer (what compaction
makes), times them at --shape (batch x sequence, default 1x128) in fp32 in alternating rounds, and fits a
latency model: a constant plus, per layer, a piecewise-linear cost of its kept heads and of its kept FFN units
(about 15 s for bert-base at 1x128 on an idle 2-core machine, a minute at 8x128). Prints the fitted tables and the dense model's
measured and predicted latency. The profile is cached in the model directory as latency-profile-<B>x<S>.json
and reused while the shape, threads, CPU kernels and geometry match; --force measures again. A file of that
name that is not a profile is refused (E_BAD_PROFILE) rather than overwritten; --force replaces it.
--json prints { path, cached, reason, profile }. <model-dir> is a local directory (the profile is cached there,
so a hub id is not taken).`,
  flags: { shape: str, force: bool, json: bool },
  args({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('profile-latency needs exactly one <model-dir>');
    const [batch, seq] = values.shape === undefined ? [1, 128] : v.flagPair('--shape', values.shape, { min: 1 });
    v.integer('--shape (batch)', batch, { max: 256 });
    v.integer('--shape (sequence)', seq, { max: 512 });
    return { dir: v.modelDirectory('<model-dir>', positionals[0]), batch, seq, force: values.force === true, json: values.json === true };
  },
  async run(a) {
    let bar: ProgressDisplay | undefined;
    let stage = '';
    const r = await loadOrProfileLatency(a.dir, {
      batch: a.batch,
      seq: a.seq,
      force: a.force,
      onProgress: (p) => {
        if (p.stage !== stage) {
          bar?.stop();
          stage = p.stage;
          bar = countProgress(p.stage === 'build' ? 'profile: build' : 'profile: time', p.total, p.stage === 'build' ? 'models' : 'rounds');
        }
        bar!.update(p.done);
      },
    });
    bar?.stop();
    if (a.json) console.log(JSON.stringify({ path: r.path, cached: r.cached, reason: r.reason, profile: r.profile }, null, 2));
    else console.log(formatProfile(r.profile, r.path, r.cached, r.reason));
  },
};
