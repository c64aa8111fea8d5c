/**
 * Live migration between real host processes over a real NATS bus, through the CLI as a user runs it:
 * precopy and postcopy of a running mem-writer with equal digests on both sides, an open stream that
 * survives its container's move, cancel, postcopy that pauses while its source is stopped and goes on
 * when it is back, the destination killed mid-precopy, and bad input. One cluster for the file; the
 * test that kills a host goes last.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterClient } from '@slicelab/client';
import type { ContainerInfo, MigrationStats } from '@slicelab/protocol';
import { Harness, oneLineError } from './harness.js';

const h = new Harness();
const cluster = 'mig';
let client: ClusterClient;
test.before(async () => {
  const config = h.writeConfig(cluster, {
    name: cluster,
    hosts: [
      { name: 'h1', cores: 2, memory: '1GiB' },
      { name: 'h2', cores: 2, memory: '1GiB' },
      { name: 'h3', cores: 2, memory: '256MiB' },
    ],
  });
  await h.up(config);
  client = await ClusterClient.connect({ nats: h.runFile(cluster)!.access!.servers.join(','), access: h.runFile(cluster)!.access, timeoutMs: 5000 });
});
test.after.always(async () => {
  await client?.close();
  await h.cli(['down']);
  await h.cleanup();
});

async function run(host: string, name: string, program: string, args: Record<string, string | number> = {}, extra: string[] = []): Promise<ContainerInfo> {
  const flags = Object.entries(args).flatMap(([k, v]) => ['--arg', `${k}=${v}`]);
  const info = await h.cliJson<ContainerInfo>(['container', 'run', '--host', host, '--name', name, '--program', program, ...flags, ...extra]);
  if (info.code !== 0) throw new Error(info.stderr);
  return info;
}

/** Polls `probe` until it says yes or `ms` have passed: a deadline, not a count of tries. */
async function pollUntil(probe: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** A mem-writer whose working set is all written (and then written on at `rate` pages/s, or not at all). */
async function writer(host: string, name: string, wss: string, rate: string | number): Promise<void> {
  await run(host, name, 'mem-writer', { wss, fill: 'yes', rate, pattern: 'random' });
  await pollUntil(async () => (await client.inspect(name)).processes[0]?.metrics['filled'] === 1, 20_000);
}

/** What a migration's JSON says went wrong (its error, or the CLI's). */
const why = (m: MigrationStats & { stderr?: string }) => JSON.stringify(m.error ?? m.stderr ?? m).slice(0, 500);

const metrics = async (name: string, program: string) => (await client.inspect(name)).processes.find((p) => p.program === program)?.metrics ?? {};

/** The migration of `name` in the cluster's list, once `done` says so. */
async function migrationOf(name: string, done: (m: MigrationStats) => boolean, ms = 20_000): Promise<MigrationStats> {
  let found: MigrationStats | undefined;
  await pollUntil(async () => {
    found = (await client.migrations()).filter((m) => m.container === name).at(-1);
    return found !== undefined && done(found);
  }, ms);
  if (!found) throw new Error(`no migration of ${name}`);
  return found;
}

test.serial('precopy moves a running mem-writer: equal digests, its name and address on the destination, the writer goes on there', async (t) => {
  t.timeout(90_000);
  await writer('h1', 'pre', '16MiB', 2000);
  await h.cli(['container', 'exec', 'pre', '--program', 'heartbeat', '--arg', 'interval=1ms']);
  const before = await client.inspect('pre');
  const m = await h.cliJson<MigrationStats>(['migrate', 'pre', '--to', 'h2', '--bandwidth', '1gbit', '--downtime-limit', '50ms'], 60_000);
  t.is(m.code, 0, m.stderr);
  t.is(m.status, 'completed', why(m));
  t.truthy(m.digest.source);
  t.is(m.digest.destination, m.digest.source);
  t.true(m.ram['dirty-sync-count'] >= 1);
  t.true(m.ram.total >= 16 * 1024 ** 2, `${m.ram.total} bytes touched`);
  t.true(m.ram['precopy-bytes'] >= m.ram.total, 'every touched page went in the rounds');
  t.true(m.ram['downtime-bytes'] > 0, 'the pages dirtied meanwhile went at the stop');
  t.is(m.ram['postcopy-bytes'], 0);
  t.true(m.downtime! > 0 && m.downtime! < m['total-time']);
  t.not(m['observed-downtime'].heartbeat, null, 'the heartbeat inside saw the switch-over');
  const after = await client.inspect('pre');
  t.is(after.host, 'h2');
  t.is(after.state, 'running');
  t.deepEqual(after.nics, before.nics, 'the same address and MAC');
  const written = after.processes[0]!.metrics['pagesWritten']!;
  await pollUntil(async () => ((await metrics('pre', 'mem-writer'))['pagesWritten'] ?? 0) > written + 200, 10_000);
  t.true(((await metrics('pre', 'mem-writer'))['pagesWritten'] ?? 0) > written, 'it writes on, on h2');
  const h1 = await h.cliJson<{ containers: ContainerInfo[] }>(['container', 'ps', '--host', 'h1']);
  t.false(JSON.stringify(h1).includes('"pre"'), 'nothing of it is left on h1');
  const status = await h.cliJson<MigrationStats>(['migrate', 'status', m.id]);
  t.is(status.status, 'completed');
  const list = await h.cliJson<{ migrations: MigrationStats[] }>(['migrate', 'list']);
  t.true(list.migrations.some((x) => x.id === m.id));
  t.is((await h.cli(['container', 'rm', 'pre', '--force'])).code, 0);
});

test.serial('postcopy runs the container on the destination first and pulls its pages there: equal digests', async (t) => {
  t.timeout(90_000);
  await writer('h1', 'post', '16MiB', 2000);
  const m = await h.cliJson<MigrationStats>(['migrate', 'post', '--to', 'h2', '--mode', 'postcopy'], 60_000);
  t.is(m.code, 0, m.stderr);
  t.is(m.status, 'completed', why(m));
  t.is(m.digest.destination, m.digest.source);
  t.is(m.ram['precopy-bytes'], 0);
  t.true(m.ram['postcopy-bytes'] >= 16 * 1024 ** 2, `${m.ram['postcopy-bytes']} bytes after the switch-over`);
  t.true(m.ram['postcopy-requests'] >= 1, 'the writer faulted on a page still on h1');
  t.not(m['fault-latency'], null);
  const info = await client.inspect('post');
  t.is(info.host, 'h2');
  t.is(info.memoryCurrent, m.ram.total, 'memory.current came along page for page');
  t.is((await h.cli(['container', 'rm', 'post', '--force'])).code, 0);
});

test.serial('an open TCP stream survives the migration of one end: every byte back in order', async (t) => {
  t.timeout(120_000);
  const server = await run('h2', 'srv', 'echo');
  // the echoes come back at 4 Mbit/s at most: the stream is still open when its client moves
  t.is((await h.cli(['net', 'set-nic', 'srv', '--ceil', '4mbit'])).code, 0);
  await run('h1', 'cli', 'echo', { mode: 'client', target: server.nics[0]!.ip, bytes: '4M', chunk: '32K' });
  await pollUntil(async () => ((await metrics('cli', 'echo'))['verified'] ?? 0) > 64 * 1024, 20_000);
  // through the library, at once: the stream must still be open when its end moves
  const m = await client.waitForMigration(await client.migrate('cli', 'h3'));
  t.is(m.status, 'completed', why(m));
  t.true(((await metrics('cli', 'echo'))['verified'] ?? 0) < 4 * 1024 ** 2, 'the stream was still open after the move');
  let logs = '';
  await pollUntil(async () => /verified \d+ bytes|echo:/.test((logs = (await client.logs('cli')).join('\n'))), 60_000);
  t.regex(logs, /echo: verified 4194304 bytes/);
  await h.cli(['container', 'rm', 'srv', '--force']);
  await h.cli(['container', 'rm', 'cli', '--force']);
});

test.serial('cancel before the commit: the container runs on where it was; a second migration meanwhile is refused', async (t) => {
  t.timeout(90_000);
  await writer('h1', 'slow', '24MiB', 'idle');
  // 24 MiB at 8 Mbit/s: about 25 s of precopy, time enough for the CLI calls below however loaded the machine
  const moving = h.start(['migrate', 'slow', '--to', 'h2', '--bandwidth', '8mbit', '--json']);
  const active = await migrationOf('slow', (m) => m.status === 'active' && m.ram.transferred > 0);
  oneLineError(t, await h.cli(['migrate', 'slow', '--to', 'h2']), /being migrated already/, 'a second migration of one container');
  oneLineError(t, await h.cli(['container', 'rm', 'slow', '--force']), /being migrated/, 'rm while it moves');
  const cancelled = await h.cliJson<MigrationStats>(['migrate', 'cancel', active.id]);
  t.is(cancelled.code, 0, why(cancelled));
  t.is(cancelled.status, 'cancelled');
  t.is(await moving.exited, 1, 'migrate exits non-zero when its migration was cancelled');
  const [stdout] = moving.output().split('\u0000');
  t.is((JSON.parse(stdout!) as MigrationStats).status, 'cancelled');
  const info = await client.inspect('slow');
  t.is(info.host, 'h1');
  t.is(info.state, 'running');
  t.false(info.frozen);
  t.is(info.migrating, undefined);
  oneLineError(t, await h.cli(['migrate', 'cancel', active.id]), /has ended \(cancelled\)/, 'cancel of an ended migration');
  // the destination gave back what it had taken: the container goes there whole now
  const again = await h.cliJson<MigrationStats>(['migrate', 'slow', '--to', 'h2', '--bandwidth', 'max'], 60_000);
  t.is(again.status, 'completed', why(again));
  t.is(again.digest.destination, again.digest.source);
  await h.cli(['container', 'rm', 'slow', '--force']);
});

test.serial('bad input: one line, the container untouched', async (t) => {
  await run('h1', 'still', 'sleeper', {}, ['--memory', '512MiB']);
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h1']), /on h1 already/, 'to its own host');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h9']), /h9.*does not answer/, 'an unknown host');
  oneLineError(t, await h.cli(['migrate', 'nosuch', '--to', 'h2']), /no container "nosuch"/, 'an unknown container');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h3']), /memory\.max.*more than h3's memory/, 'a destination without room');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h2', '--mode', 'sideways']), /--mode/, 'a bad mode');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h2', '--bandwidth', '0']), /--bandwidth/, 'a zero cap');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h2', '--downtime-limit', 'soon']), /--downtime-limit/, 'a bad duration');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h2', '--postcopy-after', '2']), /--postcopy-after needs --mode hybrid/, 'postcopy-after without hybrid');
  oneLineError(t, await h.cli(['migrate', 'still', '--to', 'h2', '--on-timeout', 'suspend']), /needs --timeout/, 'on-timeout without timeout');
  oneLineError(t, await h.cli(['migrate', 'status', 'NOSUCHMIGRATION']), /no migration "NOSUCHMIGRATION"/, 'status of an unknown id');
  oneLineError(t, await h.cli(['container', 'run', '--host', 'h1', '--name', 'res', '--program', 'sleeper', '--resource', 'db=somehow:fixed:x']), /binding "somehow"/, 'a bad resource');
  const info = await client.inspect('still');
  t.is(info.host, 'h1');
  t.is(info.state, 'running');
  t.is((await client.migrations()).filter((m) => m.container === 'still').length, 0, 'no migration was started');
  await h.cli(['container', 'rm', 'still', '--force']);
});

test.serial('declared resources are moved, copied, referenced or rebound by the binding table', async (t) => {
  await run('h1', 'res', 'sleeper', {}, ['--resource', 'db=identifier:fastened:/srv/db', '--resource', 'log=identifier:unattached:/var/log/app',
    '--resource', 'cache=value:unattached:/tmp/cache', '--resource', 'gpu=type:fixed:gpu']);
  const m = await h.cliJson<MigrationStats>(['migrate', 'res', '--to', 'h2'], 60_000);
  t.is(m.status, 'completed', why(m));
  t.deepEqual(m.resources.map((r) => [r.name, r.action, r.after]), [
    ['db', 'global-reference', '/srv/db@h1'], ['log', 'move', '/var/log/app@h2'], ['cache', 'copy', '/tmp/cache@h2'], ['gpu', 'rebind', 'gpu@h2'],
  ]);
  const info = await client.inspect('res');
  t.deepEqual(info.resources.map((r) => `${r.name}@${r.location}`), ['db@h1', 'log@h2', 'cache@h2', 'gpu@h2']);
  await h.cli(['container', 'rm', 'res', '--force']);
});

test.serial('postcopy pauses while the bus is gone and completes when it is back', async (t) => {
  t.timeout(120_000);
  await writer('h1', 'paused', '8MiB', 'idle');
  await h.cli(['container', 'exec', 'paused', '--program', 'heartbeat', '--arg', 'interval=5ms']);
  const moving = h.start(['migrate', 'paused', '--to', 'h2', '--mode', 'postcopy', '--bandwidth', '8mbit', '--json']);
  await migrationOf('paused', (m) => m.status === 'postcopy-active' && m.ram['postcopy-bytes'] > 0);
  // the source's link to the destination is the bus: stopped, its batches go unacknowledged
  const bus = h.runFile(cluster)!.nats!.pid;
  process.kill(bus, 'SIGSTOP');
  await sleep(4000);
  process.kill(bus, 'SIGCONT');
  t.is(await moving.exited, 0, moving.output());
  const [stdout] = moving.output().split('\u0000');
  const m = JSON.parse(stdout!) as MigrationStats;
  t.is(m.status, 'completed', why(m));
  t.true(m['postcopy-pauses'] >= 1, `paused ${m['postcopy-pauses']} times`);
  t.is(m.digest.destination, m.digest.source);
  const info = await client.inspect('paused');
  t.is(info.host, 'h2');
  t.is(info.state, 'running');
  await h.cli(['container', 'rm', 'paused', '--force']);
});

test.serial('the destination killed mid-precopy: the container runs on, on its source, as it was', async (t) => {
  t.timeout(90_000);
  await writer('h1', 'kept', '8MiB', 'idle');
  await h.cli(['container', 'exec', 'kept', '--program', 'heartbeat', '--arg', 'interval=5ms']);
  const moving = h.start(['migrate', 'kept', '--to', 'h3', '--bandwidth', '8mbit', '--json']);
  await migrationOf('kept', (m) => m.status === 'active' && m.ram.transferred > 0);
  const destination = h.runFile(cluster)!.hosts.find((x) => x.name === 'h3')!.pid;
  process.kill(destination, 'SIGKILL');
  t.is(await moving.exited, 1);
  const [stdout] = moving.output().split('\u0000');
  const m = JSON.parse(stdout!) as MigrationStats;
  t.is(m.status, 'failed');
  t.truthy(m.error);
  const info = await client.inspect('kept');
  t.is(info.host, 'h1');
  t.is(info.state, 'running');
  t.is(info.migrating, undefined);
  const stamps = (await metrics('kept', 'heartbeat'))['stamps'] ?? 0;
  await pollUntil(async () => ((await metrics('kept', 'heartbeat'))['stamps'] ?? 0) > stamps + 20, 10_000);
  t.true(((await metrics('kept', 'heartbeat'))['stamps'] ?? 0) > stamps, 'it runs on h1');
});
