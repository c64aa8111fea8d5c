/**
 * The program library: every program a container can run, by name. The host looks programs up here
 * (`getProgram`), the CLI lists them (`programNames`); adding a program means adding it to `all`.
 */
import type { Program } from './program.js';
import { cpuBurn } from './cpu-burn.js';
import { crasher } from './crasher.js';
import { echo } from './echo.js';
import { forkExit } from './fork-exit.js';
import { forkBomb } from './fork-bomb.js';
import { fs } from './fs.js';
import { heartbeat } from './heartbeat.js';
import { ioStress } from './io-stress.js';
import { iperf } from './iperf.js';
import { iperfUdp } from './iperf-udp.js';
import { lu } from './lu.js';
import { memWriter } from './mem-writer.js';
import { netHeartbeat } from './net-heartbeat.js';
import { ping } from './ping.js';
import { sleeper } from './sleeper.js';

export * from './program.js';
export { xorshift32 } from './define.js';
export { burnChunk, burnIterations, cpuBurn } from './cpu-burn.js';
export { crasher } from './crasher.js';
export { echo } from './echo.js';
export { forkBomb } from './fork-bomb.js';
export { forkExit } from './fork-exit.js';
export { fs, fsDataMax } from './fs.js';
export { heartbeat } from './heartbeat.js';
export { ioStress } from './io-stress.js';
export { iperf } from './iperf.js';
export { iperfUdp } from './iperf-udp.js';
export { lu, luEliminate, luFillBudget, luFillRows, luReference, luResidual, luStepBudget } from './lu.js';
export { memWriter, pagesPerStep } from './mem-writer.js';
export { netHeartbeat } from './net-heartbeat.js';
export { ping, rttText } from './ping.js';
export { sleeper } from './sleeper.js';

const all: readonly Program[] = [cpuBurn, memWriter, ioStress, forkBomb, sleeper, lu, heartbeat, forkExit, crasher, fs, ping, iperf, iperfUdp, echo, netHeartbeat];

export const programs: ReadonlyMap<string, Program> = new Map(all.map((program) => [program.name, program]));

export function getProgram(name: string): Program | undefined {
  return programs.get(name);
}

/** Program names, sorted, for help and errors. */
export function programNames(): string[] {
  return [...programs.keys()].sort();
}
