/**
 * A cluster of its own for one benchmark: started from a config validated by the same code as `up`,
 * reached through the client library like any user script, always taken down again.
 */
import { Launcher, parseConfig } from '@slicelab/launcher';
import { ClusterClient } from '@slicelab/client';

export interface BenchHost {
  name: string;
  cores: number;
  memory?: string;
  scheduler?: { policy?: string; quantum?: string; seed?: number; creditSpeed?: number };
}

export interface BenchCluster {
  launcher: Launcher;
  client: ClusterClient;
}

export async function withBenchCluster<T>(name: string, hosts: BenchHost[], run: (cluster: BenchCluster) => Promise<T>): Promise<T> {
  const config = parseConfig(
    { name, hosts: hosts.map((h) => ({ memory: '1GiB', uplink: '1gbit', ...h })) },
    `(bench ${name})`, process.cwd(),
  );
  const launcher = await Launcher.start(config);
  try {
    const client = await ClusterClient.connect({ nats: launcher.natsUrl, access: launcher.run.access, timeoutMs: 5000 });
    try {
      return await run({ launcher, client });
    } finally {
      await client.close();
    }
  } finally {
    await launcher.stop();
  }
}
