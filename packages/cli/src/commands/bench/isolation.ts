import { Flags } from '@oclif/core';
import { benchIsolation } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchIsolation extends BaseCommand {
  static override description = "A victim lu container beside each stress (cpu, memory, io, fork bomb) at equal weights: the victim's slowdown against running alone (aim: at most 5 % each)";
  static override flags = {
    duration: unitFlags.duration({ default: 4000, description: 'measurement window per stress, e.g. 4s' }),
    cores: Flags.integer({ default: 2, min: 1, max: 64, description: 'cores of the host' }),
    'pids-max': Flags.integer({ default: 64, min: 2, description: "pids.max of the neighbour (the fork bomb's limit)" }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchIsolation);
    const result = await benchIsolation({ durationMs: flags.duration, cores: flags.cores, pidsMax: flags['pids-max'], outDir: flags.out, onProgress: (l) => this.progress(l) });
    this.progressDone();
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    this.say(table(['neighbour stress', 'victim units/s', 'units/CPU s', 'victim CPU (cores)', 'victim slowdown', 'aim ≤ 5%'], [
      ...result.aloneRuns.map((run, i) => [i === 0 ? 'none (alone, first)' : 'none (alone, last)', run.unitsPerSecond.toFixed(1), run.unitsPerCpuSecond.toFixed(1), run.cpuShare.toFixed(2), run === result.alone ? 'baseline' : '', '']),
      ...result.rows.map((r) => [
        r.stress, r.unitsPerSecond.toFixed(1), r.unitsPerCpuSecond.toFixed(1), r.cpuShare.toFixed(2), pct(r.slowdown), r.slowdown <= 0.05 ? 'met' : 'MISSED',
      ]),
    ]));
    const fb = result.forkBomb;
    this.say(table(['fork bomb', 'value', 'aim'], [
      ['pids.peak / pids.max', `${fb.pidsPeak} / ${fb.pidsMax}`, fb.pidsPeak <= fb.pidsMax ? 'never above: met' : 'MISSED'],
      ['forks refused (pids.events max)', fb.refusedForks, ''],
      ['host status round trip p50 / max', `${fb.statusMs.p50.toFixed(1)} / ${fb.statusMs.max.toFixed(1)} ms`, fb.statusMs.max < 100 ? '< 100 ms: met' : 'MISSED'],
    ]));
    this.say(`wrote ${result.files.json} and ${result.files.chart}`);
    return result;
  }
}
