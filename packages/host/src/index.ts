export * from './host.js';
export * from './run.js';
export { GuestMemory } from './memory.js';
export { Machine, type MachineOptions, type RunSpec } from './machine.js';
export { threadCpuClock } from './thread-cpu.js';
export { batchPages } from './migration/outgoing.js';
