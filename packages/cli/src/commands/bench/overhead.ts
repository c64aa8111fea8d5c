import { Flags } from '@oclif/core';
import { benchOverhead } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchOverhead extends BaseCommand {
  static override description = 'The lu kernel in a plain Node worker vs in a container on an idle host (aims: overhead at most 5 %, scheduler dispatch under 2 % of a core)';
  static override flags = {
    duration: unitFlags.duration({ default: 5000, description: 'how long each side runs, e.g. 5s' }),
    n: Flags.integer({ default: 96, min: 8, max: 512, description: 'lu matrix order' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchOverhead);
    const r = await benchOverhead({ durationMs: flags.duration, n: flags.n, outDir: flags.out, onProgress: (l) => this.progress(l) });
    this.progressDone();
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    this.say(table(['measure', 'plain worker', 'container', 'aim'], [
      ['lu units / s', r.plain.unitsPerSecond.toFixed(1), r.container.unitsPerSecond.toFixed(1), ''],
      ['lu units / CPU s', r.plain.unitsPerCpuSecond.toFixed(1), r.container.unitsPerCpuSecond.toFixed(1), ''],
      ['overhead', '', pct(r.overhead), `≤ 5%: ${r.aims.overheadAtMost5Percent ? 'met' : 'MISSED'}`],
      ['scheduler dispatch cost', '', `${pct(r.schedulerCostOfACore)} of a core`, `< 2%: ${r.aims.dispatchUnder2PercentOfACore ? 'met' : 'MISSED'}`],
      ['host main thread, all of it (scheduler, bus, GC)', '', `${pct(r.mainThreadOfACore)} of a core`, ''],
    ]));
    this.say(`wrote ${r.files.json} and ${r.files.chart}`);
    return r;
  }
}
