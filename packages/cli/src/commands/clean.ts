import { cleanStaleRuns } from '@slicelab/launcher';
import { BaseCommand } from '../base.js';

export default class Clean extends BaseCommand {
  static override description = 'Remove what crashed runs left: kill their recorded processes, delete stale run files (like `mn -c`)';

  async run() {
    await this.parse(Clean);
    const { cleaned, running } = await cleanStaleRuns();
    for (const c of cleaned) this.say(`cluster ${c.cluster}: killed ${c.killed.length} processes${c.killed.length ? ` (${c.killed.join(', ')})` : ''}, removed ${c.removed.length} files`);
    for (const name of running) this.say(`cluster ${name} is running, left alone (stop it with: slicelab down --cluster ${name})`);
    if (cleaned.length === 0) this.say('nothing to clean');
    return { cleaned, running };
  }
}
