/**
 * Checkpoint, restore and clone through the CLI, as a user drives them, on one detached cluster of real
 * host processes (h1, h2, h3) shared by the whole file (tests run in order and build on each other): the
 * image leaves its host over the bus, sits in a file, and comes back on another host exactly where it
 * stopped. Bad images and taken names leave every host as it was.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CheckpointResult, ContainerInfo, ContainerInspected, ProcessInfo, RestoreResult, TransferStats } from '@slicelab/protocol';
import { Harness, hostConfig, keyed, oneLineError, poll, pollUntil } from './harness.js';

const h = new Harness();
const cluster = 'cpt';
const config = h.writeConfig(cluster, hostConfig(cluster, ['h1', 'h2', 'h3']));

/** what the CLI prints with --json: the client's results, and the checkpoint's file */
type CheckpointJson = CheckpointResult & { file: string };
type RestoreJson = RestoreResult & { transfer: TransferStats };
type InspectJson = ContainerInspected;
type ErrorJson = { error: { code: string; message: string } };
type StatusJson = { hosts: Array<{ name: string; state: string; managed: boolean }> };

test.before(async () => {
  await h.up(config);
});

test.after.always(async () => {
  await h.cli(['down']);
  await h.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// helpers: all of them go through the CLI

const image = (name: string) => join(h.home, `${name}.img`);

async function ps(host?: string): Promise<ContainerInfo[]> {
  const result = await h.cliJson<{ containers: ContainerInfo[] }>(['container', 'ps', ...(host ? ['--host', host] : [])]);
  if (result.code !== 0) throw new Error(`container ps failed (exit ${result.code}): ${result.stderr}`);
  return result.containers;
}

async function cgroup(name: string): Promise<Record<string, string>> {
  const result = await h.cliJson<{ files: Record<string, string> }>(['cgroup', 'get', name]);
  if (result.code !== 0) throw new Error(`cgroup get ${name} failed (exit ${result.code}): ${result.stderr}`);
  return result.files;
}

async function inspectDigest(name: string): Promise<InspectJson> {
  const result = await h.cliJson<InspectJson>(['container', 'inspect', name, '--digest']);
  if (result.code !== 0) throw new Error(`container inspect ${name} failed (exit ${result.code}): ${result.stderr}`);
  return result;
}

async function checkpoint(name: string, ...flags: string[]) {
  return h.cliJson<CheckpointJson>(['container', 'checkpoint', name, '--out', image(name), ...flags]);
}

async function restore(file: string, host: string, name?: string) {
  return h.cliJson<RestoreJson>(['container', 'restore', file, '--host', host, ...(name ? ['--name', name] : [])]);
}

/** A process's counter (processes[i].metrics[key]) in a listing; NaN when the container or process is absent. */
function metric(list: ContainerInfo[] | ContainerInfo | undefined, name: string, key: string, index = 0): number {
  const c = Array.isArray(list) ? list.find((x) => x.name === name) : list;
  return c?.processes[index]?.metrics[key] ?? Number.NaN;
}

const live = (c: ContainerInfo) => c.processes.filter((p) => p.state !== 'exited');
const named = (list: ContainerInfo[], name: string) => list.filter((c) => c.name === name);
const isFrozen = (files: Record<string, string>) => /^frozen 1$/m.test(files['cgroup.events'] ?? '');

/** What the first tests wrote down, for later tests to build on. */
const saved = { tickLiveDigest: '' };

// ---------------------------------------------------------------------------------------------------------

test.serial('checkpoint on h1, restore on h2 and h3: memory byte for byte, pids, counters and cgroup counters continue', async (t) => {
  const runs = await Promise.all([
    h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'mw', '--program', 'mem-writer', '--arg', 'wss=8MiB', '--arg', 'rate=2000']),
    h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'hb', '--program', 'heartbeat', '--arg', 'interval=5ms']),
  ]);
  for (const run of runs) t.is(run.code, 0, run.stderr);
  // more processes than pid 1 for "the same pids inside", and one that ends at once, for pids.peak 3 over 2
  // one after the other: a crasher started first may be gone before the sleeper arrives (pids.peak 2)
  const sleeper = await h.cliJson<ProcessInfo>(['container', 'exec', 'hb', '--program', 'sleeper', '--arg', 'sleep=100ms']);
  const crasher = await h.cliJson<ProcessInfo>(['container', 'exec', 'hb', '--program', 'crasher', '--arg', 'after=0']);
  t.is(sleeper.code, 0, sleeper.stderr);
  t.is(crasher.code, 0, crasher.stderr);
  t.deepEqual([sleeper.pid, crasher.pid], [2, 3]);
  // the working set is filled once (2048 pages), the heartbeat has stamped a while, the crasher is gone
  const running = await poll(() => ps('h1'), (cs) => metric(cs, 'mw', 'pagesWritten') > 2048 && metric(cs, 'hb', 'stamps') > 20 && named(cs, 'hb')[0]?.pids === 2);
  t.true(metric(running, 'mw', 'pagesWritten') > 2048, JSON.stringify(named(running, 'mw')));
  t.is(named(running, 'hb')[0]?.pids, 2, JSON.stringify(named(running, 'hb')));

  // frozen, the memory and the counters hold still: what inspect sees now is what the image must hold
  const freezes = await Promise.all(['mw', 'hb'].map((name) => h.cli(['cgroup', 'set', name, 'cgroup.freeze=1'])));
  for (const freeze of freezes) t.is(freeze.code, 0, freeze.stderr);
  const frozenFiles = await Promise.all(['mw', 'hb'].map((name) => poll(() => cgroup(name), isFrozen)));
  for (const files of frozenFiles) t.true(isFrozen(files), files['cgroup.events']);
  const [mwBefore, hbBefore] = await Promise.all([inspectDigest('mw'), inspectDigest('hb')]);
  t.regex(mwBefore.digest ?? '', /^[0-9a-f]{64}$/);
  t.is(mwBefore.pages, 2048);
  const usageBefore = keyed(frozenFiles[0]!['cpu.stat'])['usage_usec']!;
  t.true(usageBefore > 0, frozenFiles[0]!['cpu.stat']);
  t.deepEqual([frozenFiles[1]!['pids.current'], frozenFiles[1]!['pids.peak']], ['2', '3']);

  const checkpointAsked = Date.now();
  const [mwImage, hbImage] = await Promise.all([checkpoint('mw'), checkpoint('hb')]);
  for (const [cp, before] of [[mwImage, mwBefore], [hbImage, hbBefore]] as const) {
    t.is(cp.code, 0, cp.stderr);
    t.is(cp.host, 'h1');
    t.false(cp.leftRunning);
    t.is<string | undefined, string | undefined>(cp.digest, before.digest, `${cp.name}: the image holds the memory inspect saw`);
    t.is<number | undefined, number | undefined>(cp.pages, before.pages);
    t.is(cp.file, image(cp.name));
    t.is(statSync(cp.file).size, cp.imageBytes, `${cp.name}: the file is the whole image`);
    t.is(cp.transfer.bytes, cp.imageBytes);
  }
  t.is(mwImage.touchedBytes, 8 * 1024 * 1024);
  const afterCheckpoint = await ps();
  t.deepEqual(afterCheckpoint.filter((c) => ['mw', 'hb'].includes(c.name)), [], 'a default checkpoint ends the container and frees its name');

  const [mw, hb] = await Promise.all([restore(image('mw'), 'h2'), restore(image('hb'), 'h3')]);
  for (const [r, cp, host] of [[mw, mwImage, 'h2'], [hb, hbImage, 'h3']] as const) {
    t.is(r.code, 0, r.stderr);
    t.is(r.info.name, cp.name, 'the name in the image');
    t.is(r.info.host, host);
    t.is(r.sourceHost, 'h1');
    t.is(r.digest, cp.digest);
    t.is(r.pages, cp.pages);
    t.is(r.imageBytes, cp.imageBytes);
    t.true(r.checkpointedAt >= checkpointAsked && r.checkpointedAt <= Date.now(), `checkpointed at ${r.checkpointedAt}, asked at ${checkpointAsked}`);
  }
  const inside = (c: ContainerInfo) => c.processes.map((p) => [p.pid, p.ppid, p.program]);
  t.deepEqual(inside(mw.info), [[1, 0, 'mem-writer']]);
  t.deepEqual(inside(hb.info), inside(hbBefore), 'the same pids inside');
  t.deepEqual(live(hb.info).map((p) => [p.pid, p.program]), [[1, 'heartbeat'], [sleeper.pid, 'sleeper']]);
  // still frozen, as it was written down: the restored memory is compared on the destination host itself
  t.true(mw.info.frozen, 'cgroup.freeze=1 comes back with the container');
  const [mwAfter, hbAfter, restoredFiles, hbFiles] = await Promise.all([inspectDigest('mw'), inspectDigest('hb'), cgroup('mw'), cgroup('hb')]);
  t.is(mwAfter.digest, mwBefore.digest, 'mw: memory byte for byte equal on h2');
  t.is(hbAfter.digest, hbBefore.digest, 'hb: memory byte for byte equal on h3');
  t.is(metric(mwAfter, 'mw', 'pagesWritten'), metric(mwBefore, 'mw', 'pagesWritten'), 'the page counter is where it stopped');
  t.is(metric(hbAfter, 'hb', 'stamps'), metric(hbBefore, 'hb', 'stamps'), 'the stamps are where they stopped');
  t.true(keyed(restoredFiles['cpu.stat'])['usage_usec']! >= usageBefore, `cpu.stat usage_usec ${usageBefore} → ${restoredFiles['cpu.stat']}`);
  t.is(restoredFiles['memory.peak'], frozenFiles[0]!['memory.peak'], 'memory.peak carries over');
  t.deepEqual([hbFiles['pids.current'], hbFiles['pids.peak']], ['2', '3'], 'pids.peak carries over');

  // thawed, they run on from there, never from 0
  const thaws = await Promise.all(['mw', 'hb'].map((name) => h.cli(['cgroup', 'set', name, 'cgroup.freeze=0'])));
  for (const thaw of thaws) t.is(thaw.code, 0, thaw.stderr);
  const resumed = await poll(() => ps(), (cs) => metric(cs, 'mw', 'pagesWritten') > metric(mwAfter, 'mw', 'pagesWritten') + 100 && metric(cs, 'hb', 'stamps') > metric(hbAfter, 'hb', 'stamps') + 20);
  t.true(metric(resumed, 'mw', 'pagesWritten') > metric(mwAfter, 'mw', 'pagesWritten') + 100, JSON.stringify(named(resumed, 'mw')[0]?.processes));
  t.true(metric(resumed, 'hb', 'stamps') > metric(hbAfter, 'hb', 'stamps') + 20, JSON.stringify(named(resumed, 'hb')[0]?.processes));
  t.deepEqual(named(resumed, 'mw').map((c) => [c.host, c.state, c.frozen]), [['h2', 'running', false]]);
});

test.serial('the container\'s clock continues: the time its image sat in a file is not a pause it sees', async (t) => {
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'tick', '--program', 'heartbeat', '--arg', 'interval=5ms']);
  t.is(run.code, 0, run.stderr);
  const before = await poll(() => ps('h1'), (cs) => metric(cs, 'tick', 'stamps') > 20);
  const cp = await checkpoint('tick');
  t.is(cp.code, 0, cp.stderr);
  const written = performance.now();
  // deliberate: the image sits in its file at least this long
  const waitMs = 1500;
  await sleep(waitMs);
  const r = await restore(image('tick'), 'h2');
  const waitedMs = performance.now() - written;
  t.is(r.code, 0, r.stderr);
  t.is(r.info.host, 'h2');
  t.true(metric(r.info, 'tick', 'stamps') >= metric(before, 'tick', 'stamps'), 'the stamps continue from the checkpoint');

  const after = await poll(() => ps('h2'), (cs) => metric(cs, 'tick', 'stamps') > metric(r.info, 'tick', 'stamps') + 20);
  const pausedBefore = metric(before, 'tick', 'pausedMs');
  const pausedAfter = metric(after, 'tick', 'pausedMs');
  const maxGapMs = metric(after, 'tick', 'maxGapMs');
  t.log(`image in a file for ${waitedMs.toFixed(0)} ms; pausedMs ${pausedBefore.toFixed(1)} → ${pausedAfter.toFixed(1)}, maxGapMs ${maxGapMs.toFixed(1)}`);
  t.true(metric(after, 'tick', 'stamps') > metric(r.info, 'tick', 'stamps') + 20, 'it stamps on, on h2');
  // had its clock run on in the file, one gap between two stamps would span the whole wait
  t.true(pausedAfter - pausedBefore < waitMs, `the wait is not counted as a pause (pausedMs ${pausedBefore} → ${pausedAfter})`);
  t.true(maxGapMs < waitMs, `no gap between two stamps as long as the wait (${maxGapMs} ms)`);
});

test.serial('--leave-running: the source runs on; its image restored under a new name runs beside it', async (t) => {
  const cp = await h.cliJson<CheckpointJson>(['container', 'checkpoint', 'tick', '--out', image('tick-live'), '--leave-running']);
  t.is(cp.code, 0, cp.stderr);
  t.true(cp.leftRunning);
  t.is(cp.host, 'h2');
  t.is(statSync(image('tick-live')).size, cp.imageBytes);
  saved.tickLiveDigest = cp.digest;

  const r = await restore(image('tick-live'), 'h3', 'tick3');
  t.is(r.code, 0, r.stderr);
  t.deepEqual([r.info.name, r.info.host, r.sourceHost, r.digest], ['tick3', 'h3', 'h2', cp.digest]);
  // the stamps at the checkpoint: both go beyond them, the source because it never stopped
  const atCheckpoint = metric(r.info, 'tick3', 'stamps');
  t.true(atCheckpoint > 20, `${atCheckpoint} stamps in the image`);
  const both = await poll(() => ps(), (cs) => ['tick', 'tick3'].every((n) => metric(cs, n, 'stamps') > atCheckpoint + 20));
  t.deepEqual(both.filter((c) => c.name.startsWith('tick')).map((c) => [c.name, c.host, c.state]).sort(), [['tick', 'h2', 'running'], ['tick3', 'h3', 'running']]);
  for (const n of ['tick', 'tick3']) t.true(metric(both, n, 'stamps') > atCheckpoint + 20, `${n} stamps on (${metric(both, n, 'stamps')} after ${atCheckpoint})`);
});

test.serial('clone: the copy on another host and the original run on independently; removing one leaves the other', async (t) => {
  const clone = await h.cliJson<{ checkpoint: CheckpointResult; restore: RestoreResult }>(['container', 'clone', 'mw', '--to', 'h3', '--name', 'mw2']);
  t.is(clone.code, 0, clone.stderr);
  t.true(clone.checkpoint.leftRunning);
  t.is(clone.checkpoint.host, 'h2');
  t.deepEqual([clone.restore.info.name, clone.restore.info.host, clone.restore.sourceHost], ['mw2', 'h3', 'h2']);
  t.is(clone.restore.digest, clone.checkpoint.digest);
  t.is(clone.restore.pages, 2048);
  const atClone = metric(clone.restore.info, 'mw2', 'pagesWritten');
  t.true(atClone > 2048, 'the copy starts from the original\'s counter');

  const advanced = await poll(() => ps(), (cs) => ['mw', 'mw2'].every((n) => metric(cs, n, 'pagesWritten') > atClone + 100));
  for (const n of ['mw', 'mw2']) t.true(metric(advanced, n, 'pagesWritten') > atClone + 100, `${n} writes on`);
  t.deepEqual(advanced.filter((c) => c.name.startsWith('mw')).map((c) => [c.name, c.host, c.state]).sort(), [['mw', 'h2', 'running'], ['mw2', 'h3', 'running']]);

  const rm = await h.cliJson<{ removed: boolean }>(['container', 'rm', 'mw', '--force']);
  t.is(rm.code, 0, rm.stderr);
  const left = await poll(() => ps(), (cs) => metric(cs, 'mw2', 'pagesWritten') > metric(advanced, 'mw2', 'pagesWritten') + 100);
  t.deepEqual(named(left, 'mw'), [], 'the original is gone');
  t.deepEqual(named(left, 'mw2').map((c) => [c.host, c.state]), [['h3', 'running']]);
  t.true(metric(left, 'mw2', 'pagesWritten') > metric(advanced, 'mw2', 'pagesWritten') + 100, 'the copy writes on alone');
});

test.serial('bad images, taken names, unknown hosts and containers: one line, non-zero exit, every host as it was', async (t) => {
  // a fresh image whose name is free: anything a bad restore left behind would show under that name
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'gone', '--program', 'sleeper']);
  t.is(run.code, 0, run.stderr);
  const cp = await checkpoint('gone');
  t.is(cp.code, 0, cp.stderr);
  const good = readFileSync(image('gone'));
  const corrupted = Buffer.from(good);
  corrupted.writeUInt8(corrupted.readUInt8(good.length >> 1) ^ 0xff, good.length >> 1);
  const otherFormat = Buffer.from(good);
  otherFormat.writeUInt32LE(2, 8);
  const bad = (name: string, bytes: Uint8Array) => {
    const file = join(h.home, name);
    writeFileSync(file, bytes);
    return file;
  };
  const half = good.length >> 1;
  const cases: Array<[string, string[], RegExp]> = [
    ['a corrupted image', ['restore', bad('corrupted.img', corrupted), '--host', 'h3'], /checkpoint image is corrupted: /],
    ['a truncated image', ['restore', bad('truncated.img', good.subarray(0, half)), '--host', 'h3'], new RegExp(`checkpoint image is truncated \\(${half} of ${good.length} bytes\\)`)],
    ['another format version', ['restore', bad('format2.img', otherFormat), '--host', 'h3'], /checkpoint image format 2 is not one this slicelab reads \(it reads 1\)/],
    ['an unknown host', ['restore', image('gone'), '--host', 'h7'], /no host "h7"/],
    ['no such file', ['restore', join(h.home, 'nothing.img'), '--host', 'h3'], /cannot read .*nothing\.img/],
    ['checkpoint of an unknown container', ['checkpoint', 'nope', '--out', image('nope')], /no container "nope"/],
  ];
  const results = await Promise.all(cases.map(([, args]) => h.cli(['container', ...args])));
  cases.forEach(([what, , pattern], i) => oneLineError(t, results[i]!, pattern, what));
  t.false(existsSync(image('nope')) || existsSync(`${image('nope')}.part`), 'no image file for an unknown container');
  const after = await ps();
  t.deepEqual(named(after, 'gone'), [], 'no restore left a container behind');
  t.deepEqual(after.map((c) => c.name).sort(), ['hb', 'mw2', 'tick', 'tick3'], 'every host lists what the tests before left');
  // the name was never claimed: a new container takes it
  const reuse = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h3', '--name', 'gone', '--program', 'sleeper']);
  t.is(reuse.code, 0, reuse.stderr);

  // now the name is taken: by the new gone on h3, and, under --name, by tick on h2
  const [taken, takenByNew, stop] = await Promise.all([
    h.cli(['container', 'restore', image('gone'), '--host', 'h1']),
    h.cli(['container', 'restore', image('gone'), '--host', 'h3', '--name', 'tick']),
    h.cliJson<ContainerInfo>(['container', 'stop', 'gone']),
  ]);
  oneLineError(t, taken, /a container named "gone" exists on h3/, 'restore of a taken name');
  oneLineError(t, takenByNew, /a container named "tick" exists on h2/, 'restore under a taken --name');
  t.is(stop.code, 0, stop.stderr);
  t.is(stop.state, 'exited');

  const stopped = await h.cli(['container', 'checkpoint', 'gone', '--out', image('stopped')]);
  oneLineError(t, stopped, /"gone" is not running \(exited\)/, 'checkpoint of a stopped container');
  t.false(existsSync(image('stopped')) || existsSync(`${image('stopped')}.part`), 'no image file for a stopped container');
  const end = await ps();
  t.deepEqual(named(end, 'gone').map((c) => [c.host, c.id, c.state, c.program]), [['h3', reuse.id, 'exited', 'sleeper']], 'gone is as it was: stopped, on h3');
  t.deepEqual(end.filter((c) => c.name !== 'gone').map((c) => [c.name, c.host, c.id]), after.map((c) => [c.name, c.host, c.id]), 'the others too');
});

test.serial('a name is claimed cluster-wide: two runs of one name on two hosts at once, exactly one wins', async (t) => {
  const hosts = ['h1', 'h2'];
  const results = await Promise.all(hosts.map((host) => h.cliJson<ContainerInfo & Partial<ErrorJson>>(['container', 'run', '--host', host, '--name', 'race', '--program', 'sleeper'])));
  const winners = results.filter((r) => r.code === 0);
  const losers = results.filter((r) => r.code !== 0);
  t.is(winners.length, 1, JSON.stringify(results));
  t.is(losers.length, 1);
  const winner = winners[0]!;
  t.is(losers[0]?.error?.code, 'EEXIST');
  t.regex(losers[0]?.error?.message ?? '', new RegExp(`a container named "race" exists on ${winner.host}`));
  t.deepEqual(named(await ps(), 'race').map((c) => [c.host, c.id]), [[winner.host, winner.id]], 'one race in the cluster');

  t.is((await h.cli(['container', 'rm', 'race', '--force'])).code, 0);
  const loserHost = hosts.find((host) => host !== winner.host)!;
  const again = await h.cliJson<ContainerInfo>(['container', 'run', '--host', loserHost, '--name', 'race', '--program', 'sleeper']);
  t.is(again.code, 0, again.stderr);
  t.is(again.host, loserHost, 'after rm the name is free again');
});

test.serial('restore onto a lone host that joined the bus: the image reaches it over the bus', async (t) => {
  const url = h.runFile(cluster)?.natsUrl;
  t.truthy(url, 'the run file records the bus');
  const lone = h.start(['host', '--nats', url!, '--creds', await h.hostCreds(cluster, 'h9')]);
  t.true(await pollUntil(() => /joined cluster cpt/.test(lone.output()), 15_000), lone.output());
  const status = await poll(() => h.cliJson<StatusJson>(['status']), (s) => s.hosts.some((x) => x.name === 'h9' && x.state === 'up'), 20, 200);
  t.deepEqual(status.hosts.filter((x) => x.name === 'h9').map((x) => [x.state, x.managed]), [['up', false]]);

  const r = await restore(image('tick-live'), 'h9', 'tick9');
  t.is(r.code, 0, r.stderr);
  t.deepEqual([r.info.name, r.info.host, r.sourceHost], ['tick9', 'h9', 'h2']);
  t.is(r.digest, saved.tickLiveDigest);
  t.is(r.transfer.bytes, statSync(image('tick-live')).size, 'the whole file went over the bus');
  const on = await poll(() => ps('h9'), (cs) => metric(cs, 'tick9', 'stamps') > metric(r.info, 'tick9', 'stamps') + 20);
  t.deepEqual(on.map((c) => [c.name, c.host, c.state]), [['tick9', 'h9', 'running']]);
  t.true(metric(on, 'tick9', 'stamps') > metric(r.info, 'tick9', 'stamps') + 20, 'it stamps on, on h9');

  lone.child.kill('SIGTERM');
  t.is(await lone.exited, 0);
});
