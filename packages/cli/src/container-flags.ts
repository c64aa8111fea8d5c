/** Flags shared by the container commands, and how `--arg k=v` and limit flags become requests. */
import { Flags } from '@oclif/core';
import { SlicelabError, formatSize } from '@slicelab/protocol';
import { unitFlags } from './base.js';

export const argFlag = Flags.string({ multiple: true, description: 'program argument, k=v (repeatable)' });

export function programArgs(pairs: string[] | undefined): Record<string, string> {
  const args: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new SlicelabError('EINVAL', `--arg "${pair}" is not k=v`);
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return args;
}

export const limitFlags = {
  'cpu-weight': Flags.string({ description: 'cpu.weight, 1..10000 (default 100)' }),
  'cpu-max': Flags.string({ description: 'cpu.max, "$QUOTA $PERIOD" in µs, e.g. "50000 100000"' }),
  'cpus': Flags.string({ description: 'cpuset.cpus, e.g. "0" or "0-1"' }),
  memory: unitFlags.size({ description: 'memory.max, e.g. 256MiB' }),
  'memory-high': unitFlags.size({ description: 'memory.high: throttle above it, e.g. 192MiB' }),
  'pids-max': Flags.string({ description: 'pids.max' }),
  'io-weight': Flags.string({ description: 'io.weight, 1..10000' }),
  'credit-size': Flags.string({ description: 'T2 size under the credit scheduler (t2.micro, t2.small, t2.medium)' }),
  'credit-mode': Flags.string({ options: ['standard', 'unlimited'], description: 'T2 credit mode' }),
};

type LimitValues = { [K in keyof typeof limitFlags]?: string | number };

/** The limit flags as cgroup file writes, validated by the host with the kernel's rules. */
export function cgroupWrites(flags: LimitValues): Record<string, string> {
  const files: Record<string, string> = {};
  const set = (file: string, value: string | number | undefined) => {
    if (value !== undefined) files[file] = String(value);
  };
  set('cpu.weight', flags['cpu-weight']);
  set('cpu.max', flags['cpu-max']);
  set('cpuset.cpus', flags.cpus);
  set('memory.max', flags.memory);
  set('memory.high', flags['memory-high']);
  set('pids.max', flags['pids-max']);
  set('io.weight', flags['io-weight']);
  set('cpu.credit.size', flags['credit-size']);
  set('cpu.credit.mode', flags['credit-mode']);
  return files;
}

export function memoryText(current: number, max: number | null): string {
  return `${formatSize(current)} / ${max === null ? 'max' : formatSize(max)}`;
}
