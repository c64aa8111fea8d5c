/**
 * `bench startup`: how long from `up` until every host registered, and what an idle host process costs in
 * resident memory (read from /proc, outside the host). Starts a real cluster of N hosts on an embedded
 * bus in its own run folder and takes it down again.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseRate, parseSize } from '@slicelab/protocol';
import { Launcher, parseConfig, residentBytes } from '@slicelab/launcher';
import { writeChart } from './chart.js';
import { summarize, type Summary } from './stats.js';

export interface StartupOptions {
  hosts: number;
  /** how long the cluster idles before host memory is read (ms) */
  idleMs?: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface StartupResult {
  hosts: number;
  cores: number;
  busMs: number;
  allRegisteredMs: number;
  registeredMs: Summary;
  idleRssBytes: Summary;
  aims: { allRegisteredUnder15sAt32: boolean | null; idleHostUnder60MB: boolean };
  files: { json: string; chart: string };
}

export async function benchStartup(options: StartupOptions): Promise<StartupResult> {
  const name = `bench-startup-${options.hosts}`;
  const hostSpec = { cores: 2, memory: parseSize('1GiB'), uplink: { bandwidth: parseRate('1gbit'), delay: 0, jitter: 0, loss: 0, maxQueue: 1000 } };
  const config = parseConfig(
    { name, hosts: Array.from({ length: options.hosts }, (_, i) => ({ name: `h${i + 1}`, cores: 2, memory: '1GiB', uplink: '1gbit' })) },
    `(bench startup, ${options.hosts} hosts)`, process.cwd(),
  );
  const launcher = await Launcher.start(config, { onProgress: (done, total) => options.onProgress?.(`up: ${done}/${total} hosts registered`) });
  try {
    const idleMs = options.idleMs ?? 5000;
    for (let waited = 0; waited < idleMs; waited += 1000) {
      options.onProgress?.(`idle: reading host memory in ${Math.ceil((idleMs - waited) / 1000)} s`);
      await sleep(Math.min(1000, idleMs - waited));
    }
    const rss = config.hosts.map((h) => residentBytes(launcher.hostPid(h.name)!));
    const registered = Object.values(launcher.timings.registered);
    const allRegisteredMs = launcher.timings.total;
    const idleRss = summarize(rss);
    const json = join(options.outDir, `startup-${options.hosts}.json`);
    const chart = join(options.outDir, `startup-${options.hosts}.svg`);
    const result: StartupResult = {
      hosts: options.hosts,
      cores: hostSpec.cores,
      busMs: launcher.timings.bus,
      allRegisteredMs,
      registeredMs: summarize(registered),
      idleRssBytes: idleRss,
      aims: {
        allRegisteredUnder15sAt32: options.hosts >= 32 ? allRegisteredMs < 15_000 : null,
        idleHostUnder60MB: idleRss.max < 60 * 1e6,
      },
      files: { json, chart },
    };
    mkdirSync(options.outDir, { recursive: true });
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    const timeline = registered.sort((a, b) => a - b).map((ms, i) => ({ seconds: ms / 1000, hosts: i + 1 }));
    await writeChart({
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `slicelab startup: ${options.hosts} hosts registered in ${(allRegisteredMs / 1000).toFixed(2)} s`,
      width: 480, height: 280,
      data: { values: [{ seconds: 0, hosts: 0 }, ...timeline] },
      mark: { type: 'line', interpolate: 'step-after', point: true },
      encoding: {
        x: { field: 'seconds', type: 'quantitative', title: 'seconds since up' },
        y: { field: 'hosts', type: 'quantitative', title: 'hosts registered' },
      },
    }, chart);
    return result;
  } finally {
    options.onProgress?.('down');
    await launcher.stop();
  }
}
