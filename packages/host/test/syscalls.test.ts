/**
 * System calls carried out on a real process table, with a scheduler that has no cores (so nothing runs
 * and each call's result stays in the process's `ret` to be read).
 */
import test from 'ava';
import { defaultLimits } from '../dist/cgroup.js';
import { Container } from '../dist/container.js';
import { Disk, IoGroup } from '../dist/disk.js';
import { GuestMemory, HostMemory } from '../dist/memory.js';
import { UserNamespace } from '../dist/namespaces.js';
import { OomKiller } from '../dist/oom.js';
import { Processes } from '../dist/processes.js';
import { SchedGroup, Scheduler } from '../dist/scheduler/scheduler.js';
import { carryOut } from '../dist/syscalls.js';

test('a region is its own process\'s: another process of the container cannot free it; alloc beyond memory.max is a reservation', (t) => {
  const clock = () => performance.now();
  const scheduler = new Scheduler([], { quantumMs: 10, policy: 'wfq', now: clock }, { task: () => { throw new Error('no cores'); }, done: () => 0 });
  const disk = new Disk({ bandwidth: 1e6, iops: 1000 }, clock);
  t.teardown(() => {
    scheduler.close();
    disk.close();
  });
  const host = HostMemory.create(1 << 20);
  const limits = { ...defaultLimits(), memoryMax: 64 * 1024 };
  const container = new Container(1, { name: 'c', program: 'sleeper', args: {} }, new UserNamespace([{ inside: 0, outside: 100_000, length: 65_536 }]),
    GuestMemory.create(1 << 20, host), new SchedGroup(1, 100), new IoGroup(1, 100), limits);
  const processes = new Processes(scheduler, disk, 1);
  const ctx = { processes, oom: new OomKiller(processes, () => [container]), hostMemory: host };
  const owner = processes.start(container, 'sleeper', {}, 0, {});
  const other = processes.start(container, 'sleeper', {}, 1, {});

  carryOut(ctx, owner, { sys: 'alloc', bytes: 256 * 1024 }, undefined);
  t.like(owner.ret, { ok: true }, 'four times memory.max, reserved');
  const addr = (owner.ret as { value: number }).value;
  carryOut(ctx, other, { sys: 'free', addr }, undefined);
  t.deepEqual(other.ret, { ok: false, errno: 'EINVAL' });
  t.true(container.regions.has(addr), 'the region is still there');
  carryOut(ctx, owner, { sys: 'free', addr }, undefined);
  t.deepEqual(owner.ret, { ok: true });
  t.false(container.regions.has(addr));
});
