import { Flags } from '@oclif/core';
import { SlicelabError } from '@slicelab/protocol';
import { benchFairness } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchFairness extends BaseCommand {
  static override description = 'How exactly a host shares its cores: achieved vs ideal share, lag, lottery bound, cpu.max, T2 credits (aims: wfq within 1 % and lag under one quantum)';
  static override examples = ['<%= config.bin %> bench fairness --policy wfq --weights 1,2,3 --duration 10s', '<%= config.bin %> bench fairness --policy credit --json'];
  static override flags = {
    policy: Flags.string({ options: ['wfq', 'lottery', 'credit'], default: 'wfq', description: 'scheduler to measure' }),
    weights: Flags.string({ default: '1,2,3', description: 'weights of the CPU-bound containers (cpu.weight = 100 × weight)' }),
    duration: unitFlags.duration({ default: 10_000, description: 'how long to run, e.g. 10s' }),
    cores: Flags.integer({ default: 2, min: 1, max: 64, description: 'cores of the measured host' }),
    quantum: unitFlags.duration({ default: 10, description: 'scheduling quantum, e.g. 10ms' }),
    seed: Flags.integer({ default: 1, min: 0, description: 'lottery seed' }),
    'credit-speed': Flags.integer({ default: 10_000, min: 1, description: 'how much faster the T2 credit clock runs (credit policy)' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchFairness);
    const weights = flags.weights.split(',').map((w) => Number(w.trim()));
    if (weights.length === 0 || weights.some((w) => !Number.isInteger(w) || w < 1 || w > 100)) {
      throw new SlicelabError('EINVAL', `--weights "${flags.weights}": whole numbers from 1 to 100, comma-separated`);
    }
    if (flags.duration < 1000) throw new SlicelabError('EINVAL', `--duration must be at least 1s`);
    const result = await benchFairness({
      policy: flags.policy as 'wfq' | 'lottery' | 'credit', weights, durationMs: flags.duration, cores: flags.cores, quantumMs: flags.quantum,
      seed: flags.seed, creditSpeed: flags['credit-speed'], outDir: flags.out, onProgress: (line) => this.progress(line),
    });
    this.progressDone();
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    const met = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'met' : 'MISSED');
    if (result.credit) {
      const c = result.credit;
      this.say(table(['measure', 'value', 'aim'], [
        ['credit clock', `${c.speed}× real time`, ''],
        ['highest balance seen', c.maxBalance.toFixed(2), `≤ cap ${c.cap}: ${met(c.balanceNeverAboveCap)}`],
        ['busy standard container, use after its credits ran out', pct(c.standardUseAfterCredits), `baseline ${pct(c.baseline)} ± 3 points: ${met(c.atBaseline)}`],
        ['busy unlimited container, use', pct(c.unlimited.use), ''],
        ['unlimited surplus / charged credits', `${c.unlimited.surplus.toFixed(2)} / ${c.unlimited.charged.toFixed(2)}`, ''],
      ]));
    } else {
      this.say(table(['container', 'phase', 'weight', 'CPU s', 'quanta', 'achieved', 'ideal', 'error', ...(result.policy === 'lottery' ? ['3σ bound'] : [])], result.shares.map((s) => [
        s.container, s.phase, s.weight, (s.serviceMs / 1000).toFixed(2), s.quanta, pct(s.achieved), pct(s.ideal), pct(s.relativeError),
        ...(s.bound === undefined ? [] : [`${pct(s.bound)} ${s.withinBound ? 'held' : 'BROKEN'}`]),
      ])));
      this.say(table(['measure', 'value', 'aim'], [
        ['largest share error', pct(result.maxRelativeError), result.policy === 'wfq' ? `≤ 1%: ${met(result.aims['withinOnePercent'])}` : ''],
        ...(result.policy === 'wfq' ? [['largest lag w_i·(V − v_i) (EEVDF)', `${(result.maxLagMs ?? 0).toFixed(2)} ms`, `< ${result.quantumMs} ms (one quantum): ${met(result.aims['lagUnderOneQuantum'])}`]] : []),
        ['cpu.max 20000 100000: most used in a period', `${result.cpuMax.peakPeriodMs.toFixed(2)} ms`, `≤ ${result.cpuMax.quotaMs} ms + one step's overrun (1 ms): ${met(!result.cpuMax.exceeded)}`],
        ['sleeper (20 ms run, 80 ms sleep) CPU', `${(result.sleeper.serviceMs / 1000).toFixed(2)} s`, ''],
      ]));
    }
    this.say(`wrote ${result.files.json} and ${result.files.chart}`);
    return result;
  }
}
