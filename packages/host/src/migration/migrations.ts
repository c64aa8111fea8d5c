/**
 * A host's migrations, both ways: those it sends (it is the source: start, status, list, cancel,
 * postcopy on command, and the destination's pulls) and those it receives (prepare, pages, switchover
 * with its commit, finish, abort). The bus side (host.ts) routes each request here by its subject; the id in
 * the body finds the migration.
 */
import { nuid } from '@nats-io/transport-node';
import {
  SlicelabError, unpackNumbers,
  type FinishResult, type MigratePrepare, type MigrateStart, type MigrationStats, type PageBatch, type PulledPages, type Switchover,
} from '@slicelab/protocol';
import { Incoming } from './incoming.js';
import { Outgoing, type MigrationDeps } from './outgoing.js';

/** ended migrations kept for `migrate list` and `migrate status` */
const keptMigrations = 32;

export class Migrations {
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();

  constructor(private readonly deps: MigrationDeps) {}

  /**
   * Starts moving a container to another host; answers once the destination has agreed to take it (an
   * unknown host, or one without room, is refused here with nothing changed) and goes on in the background.
   */
  async start(request: MigrateStart): Promise<MigrationStats> {
    const { machine, host } = this.deps;
    if (request.to === host) throw new SlicelabError('EINVAL', `container "${request.name}" is on ${host} already; --to must name another host`);
    const info = machine.inspect(request.name);
    if (info.state !== 'running') throw new SlicelabError('EINVAL', `container "${request.name}" is not running (${info.state}); only a running container is migrated`);
    const container = machine.container(request.name);
    if (container.migrating) throw new SlicelabError('EBUSY', `container "${request.name}" is being migrated already (migration ${container.migrating})`);
    if (container.checkpointing) throw new SlicelabError('EBUSY', `container "${request.name}" is being checkpointed`);
    const id = nuid.next();
    container.migrating = id;
    const migration = new Outgoing(this.deps, request, id);
    try {
      await migration.prepare();
    } catch (error) {
      container.migrating = undefined;
      if (error instanceof SlicelabError && error.code === 'EUNAVAILABLE') {
        throw new SlicelabError('EHOSTUNREACH', `host "${request.to}" does not answer: it is not in the cluster, or it is down`);
      }
      throw error;
    }
    this.outgoing.set(id, migration);
    for (const old of this.outgoing.keys()) {
      if (this.outgoing.size <= keptMigrations) break;
      const ended = this.outgoing.get(old)!;
      if (['completed', 'failed', 'cancelled'].includes(ended.state)) this.outgoing.delete(old);
    }
    void migration.run();
    return migration.stats();
  }

  status(id?: string): MigrationStats {
    if (id === undefined) {
      const last = [...this.outgoing.values()].at(-1);
      if (!last) throw new SlicelabError('ENOENT', `no migration has left ${this.deps.host}`);
      return last.stats();
    }
    return this.get(id).stats();
  }

  list(): MigrationStats[] {
    return [...this.outgoing.values()].map((m) => m.stats());
  }

  cancel(id: string): MigrationStats {
    const migration = this.get(id);
    migration.cancel();
    return migration.stats();
  }

  postcopy(id: string): MigrationStats {
    const migration = this.get(id);
    migration.startPostcopy();
    return migration.stats();
  }

  /** The destination's pull: pages a process there waits for. */
  pull(id: string, pages: Uint8Array): PulledPages {
    return this.get(id).pull(unpackNumbers(pages));
  }

  prepare(request: MigratePrepare): Record<string, never> {
    if (this.incoming.has(request.id)) return {};
    // an ended one stays a while, so that a retried finish or abort finds it
    this.incoming.set(request.id, new Incoming(this.deps, request, () => setTimeout(() => this.incoming.delete(request.id), 60_000).unref()));
    return {};
  }

  pages(batch: PageBatch): { seq: number } {
    return this.arriving(batch.id).pages(batch);
  }

  switchover(message: Switchover): Promise<{ digest: string; missing: number }> {
    return this.arriving(message.id).switchTo(message);
  }

  finish(id: string): Promise<FinishResult> {
    return this.arriving(id).finish();
  }

  abort(id: string, reason: string): Record<string, never> {
    this.incoming.get(id)?.abort(reason);
    return {};
  }

  /** The host stops: what is arriving is given back; what is leaving stays here (it has not committed). */
  close(): void {
    for (const incoming of this.incoming.values()) incoming.abort('the host is stopping');
    for (const outgoing of this.outgoing.values()) {
      try {
        outgoing.cancel();
      } catch {
        // ended, or in postcopy
      }
    }
  }

  private get(id: string): Outgoing {
    const migration = this.outgoing.get(id);
    if (!migration) throw new SlicelabError('ENOENT', `no migration "${id}" left ${this.deps.host}`);
    return migration;
  }

  private arriving(id: string): Incoming {
    const migration = this.incoming.get(id);
    if (!migration) throw new SlicelabError('ENOENT', `no migration "${id}" is arriving on ${this.deps.host}`);
    return migration;
  }
}
