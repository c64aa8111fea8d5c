/**
 * The baseline of `bench overhead`: a program's steps in a plain Node worker thread, with the same memory
 * class as a container but no host, no scheduler and no quanta. It answers `alloc` at once and reports
 * the program's metrics and its own CPU time when told to stop.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { GuestMemory } from '@slicelab/host';
import { getProgram, pageSize, type StepContext, type SyscallResult } from '@slicelab/programs';

const { program: name, args, durationMs, warmupMs } = workerData as { program: string; args: Record<string, string>; durationMs: number; warmupMs: number };
const program = getProgram(name)!;
const memory = GuestMemory.create(256 * 1024 * 1024);
const cpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]) / 1e6;
const clock = () => performance.timeOrigin + performance.now();
let ret: SyscallResult | undefined;
let next = pageSize;
const ctx: StepContext = {
  pid: 1, args, mem: memory, now: clock, rand: Math.random, log: () => undefined,
  get ret() {
    return ret;
  },
};
const regs = program.init(args);
const metrics = () => ({ ...(regs['metrics'] as Record<string, number>) });
// the same warm-up (JIT, first touch of the memory) a container gets before its window opens
const warmup = clock();
while (clock() - warmup < warmupMs) step();
const before = metrics();
const cpuBegan = cpu();
const began = clock();
while (clock() - began < durationMs) step();
parentPort!.postMessage({ before, after: metrics(), wallMs: clock() - began, cpuMs: cpu() - cpuBegan });

function step(): void {
  const result = program.step(regs, ctx);
  memory.endStep();
  ret = undefined;
  if (result?.sys === 'alloc') {
    ret = { ok: true, value: next };
    next += Math.ceil(result.bytes / pageSize) * pageSize;
  } else if (result !== undefined && result.sys !== 'yield') {
    throw new Error(`the plain baseline runs compute programs only, not ${result.sys}`);
  }
}
