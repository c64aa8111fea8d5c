/**
 * The detached launcher (`slicelab up --detach`): starts the cluster, tells the parent over IPC, then
 * keeps the cluster until SIGTERM (`slicelab down`).
 */
import { parseArgs } from 'node:util';
import { SlicelabError, errorMessage } from '@slicelab/protocol';
import { loadConfig } from './config.js';
import { Launcher } from './launcher.js';
import { stopOnSignal, type DaemonMessage } from './lifecycle.js';

function tell(message: DaemonMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, () => resolve());
  });
}

const { values } = parseArgs({ options: { config: { type: 'string' } } });
try {
  const launcher = await Launcher.start(loadConfig(values.config ?? 'cluster.config.json'), {
    detached: true,
    onProgress: (registered, total) => void tell({ kind: 'progress', registered, total }),
  });
  const stopped = stopOnSignal(launcher);
  await tell({ kind: 'ready', run: launcher.run });
  if (process.connected) process.disconnect();
  process.exit((await stopped) === undefined ? 0 : 1);
} catch (error) {
  await tell({ kind: 'failed', code: error instanceof SlicelabError ? error.code : 'EINTERNAL', message: errorMessage(error) });
  process.exit(1);
}
