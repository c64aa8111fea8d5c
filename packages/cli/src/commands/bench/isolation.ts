import { Flags } from '@oclif/core';
import { benchIsolation, type Spread } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchIsolation extends BaseCommand {
  static override description = "A victim lu container beside each stress (cpu, memory, io, fork bomb) at equal weights, in paired rounds with the neighbour frozen and running: the victim's median slowdown against running alone (aim: at most 5 % each), beside the machine's own floor";
  static override flags = {
    duration: unitFlags.duration({ default: 500, description: 'each measurement window, e.g. 500ms' }),
    rounds: Flags.integer({ default: 24, min: 1, max: 1000, description: 'paired rounds per stress (the side that goes first alternates)' }),
    cores: Flags.integer({ default: 2, min: 1, max: 64, description: 'cores of the host' }),
    'pids-max': Flags.integer({ default: 64, min: 2, description: "pids.max of the neighbour (the fork bomb's limit)" }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchIsolation);
    const result = await benchIsolation({
      durationMs: flags.duration, rounds: flags.rounds, cores: flags.cores, pidsMax: flags['pids-max'], outDir: flags.out, onProgress: (l) => this.progress(l),
    });
    this.progressDone();
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    const slowdown = (s: Spread) => `${pct(s.median)} [${pct(s.low)}, ${pct(s.high)}]`;
    this.say(table(['neighbour stress', 'victim units/s alone', 'beside', 'victim CPU (cores) alone / beside', 'neighbour CPU (cores)', 'slowdown, median [95% CI]', 'aim ≤ 5%'], [
      ...result.rows.map((r) => [
        r.stress, r.alone.unitsPerSecond.toFixed(1), r.beside.unitsPerSecond.toFixed(1), `${r.alone.cpuShare.toFixed(2)} / ${r.beside.cpuShare.toFixed(2)}`,
        r.neighbourCpuShare.toFixed(2), slowdown(r.slowdown), r.slowdown.median <= 0.05 ? 'met' : 'MISSED',
      ]),
      ['machine floor: cpu, plain threads, no slicelab', result.floor.alone.toFixed(1), result.floor.beside.toFixed(1), '', '', slowdown(result.floor.slowdown), ''],
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
