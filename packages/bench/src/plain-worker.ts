/**
 * The baseline beside slicelab: a program's steps in a plain Node worker thread, with the same memory
 * class as a container but no host, no scheduler and no quanta. It answers `alloc` at once, warms up as
 * a container does before its first window, then measures windows on request: each `window` message
 * runs the program for that many ms and answers with the program's metric, the wall time and the
 * thread's CPU time. Between windows it stays idle.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GuestMemory, threadCpuClock } from '@slicelab/host';
import { getProgram, pageSize, type StepContext, type SyscallResult } from '@slicelab/programs';

export interface PlainWorkerData {
  program: string;
  args: Record<string, string>;
  /** the metric a window counts (lu: units, cpu-burn: loops) */
  metric: string;
  warmupMs: number;
}

export interface PlainWindow {
  count: number;
  wallMs: number;
  cpuMs: number;
}

const { program: name, args, metric, warmupMs } = workerData as PlainWorkerData;
const program = getProgram(name)!;
const memory = GuestMemory.create(256 * 1024 * 1024);
const cpu = threadCpuClock();
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
const count = () => (regs['metrics'] as Record<string, number>)[metric] ?? 0;

run(warmupMs);
parentPort!.on('message', ({ ms }: { ms: number }) => {
  const before = count();
  const cpuBegan = cpu();
  const began = clock();
  run(ms);
  parentPort!.postMessage({ count: count() - before, wallMs: clock() - began, cpuMs: cpu() - cpuBegan } satisfies PlainWindow);
});
parentPort!.postMessage('ready');

function run(ms: number): void {
  const began = clock();
  while (clock() - began < ms) step();
}

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
