import { Flags } from '@oclif/core';
import { benchOverhead } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchOverhead extends BaseCommand {
  static override description = 'The lu kernel in a plain Node worker vs in a container on an idle host, in paired rounds (aims: median overhead at most 5 %, scheduler dispatch under 2 % of a core)';
  static override flags = {
    duration: unitFlags.duration({ default: 500, description: 'how long each side runs per round, e.g. 500ms' }),
    rounds: Flags.integer({ default: 30, min: 1, max: 1000, description: 'paired rounds (the side that goes first alternates)' }),
    n: Flags.integer({ default: 96, min: 8, max: 512, description: 'lu matrix order' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchOverhead);
    const r = await benchOverhead({ durationMs: flags.duration, rounds: flags.rounds, n: flags.n, outDir: flags.out, onProgress: (l) => this.progress(l) });
    this.progressDone();
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    this.say(table(['lu (n=' + r.n + '), median of ' + r.rounds.length + ' rounds', 'plain worker', 'container'], [
      ['units / s', r.plain.unitsPerSecond.toFixed(1), r.container.unitsPerSecond.toFixed(1)],
      ['units / CPU s', r.plain.unitsPerCpuSecond.toFixed(1), r.container.unitsPerCpuSecond.toFixed(1)],
    ]));
    this.say(table(['measure', 'value', 'aim'], [
      ['overhead, median [95% CI]', `${pct(r.overhead.median)} [${pct(r.overhead.low)}, ${pct(r.overhead.high)}]`, `≤ 5%: ${r.aims.overheadAtMost5Percent ? 'met' : 'MISSED'}`],
      ['container CPU (cores), median', r.container.cpuShare.toFixed(3), ''],
      ['quanta renewed on their core', pct(r.renewedQuanta), ''],
      ['scheduler dispatch cost', `${pct(r.schedulerCostOfACore)} of a core`, `< 2%: ${r.aims.dispatchUnder2PercentOfACore ? 'met' : 'MISSED'}`],
      ['host main thread, all of it (scheduler, bus, GC)', `${pct(r.mainThreadOfACore)} of a core`, ''],
    ]));
    this.say(`wrote ${r.files.json} and ${r.files.chart}`);
    return r;
  }
}
