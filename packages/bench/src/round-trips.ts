/** Request/reply round trips to every host over the bus: the demo's measurement. */
import type { ClusterClient } from '@slicelab/client';
import { summarize, type Summary } from './stats.js';

export async function measureRoundTrips(client: ClusterClient, hosts: string[], count: number): Promise<Record<string, Summary>> {
  const result: Record<string, Summary> = {};
  for (const host of hosts) {
    await client.ping(host); // warm the route and the host's subscription
    const samples: number[] = [];
    for (let i = 0; i < count; i++) samples.push(await client.ping(host));
    result[host] = summarize(samples);
  }
  return result;
}
