/** Flags shared by the container commands, and how `--arg k=v` and limit flags become requests. */
import { Flags } from '@oclif/core';
import { SlicelabError, formatSize, maxResources, resourceAttachments, resourceBindings, type Resource } from '@slicelab/protocol';
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

export const resourceFlag = Flags.string({
  multiple: true,
  description: `a resource it uses, NAME=BINDING:ATTACHMENT:VALUE (repeatable): binding ${resourceBindings.join('|')}, attachment ${resourceAttachments.join('|')}; migration moves, copies, references or rebinds it by the binding table`,
});

/** `--resource db=identifier:fastened:/srv/db` as the request's resource. */
export function resources(specs: string[] | undefined): Array<Omit<Resource, 'location'>> {
  if ((specs?.length ?? 0) > maxResources) throw new SlicelabError('EINVAL', `at most ${maxResources} --resource flags`);
  return (specs ?? []).map((spec) => {
    const match = /^([A-Za-z0-9_.-]{1,64})=([a-z]+):([a-z]+):(.+)$/.exec(spec);
    if (!match) throw new SlicelabError('EINVAL', `--resource "${spec}" is not NAME=BINDING:ATTACHMENT:VALUE (e.g. db=identifier:fastened:/srv/db)`);
    const [, name, binding, attachment, value] = match;
    if (!(resourceBindings as readonly string[]).includes(binding!)) throw new SlicelabError('EINVAL', `--resource ${name}: binding "${binding}" is not ${resourceBindings.join(', ')}`);
    if (!(resourceAttachments as readonly string[]).includes(attachment!)) throw new SlicelabError('EINVAL', `--resource ${name}: attachment "${attachment}" is not ${resourceAttachments.join(', ')}`);
    return { name: name!, binding: binding as Resource['binding'], attachment: attachment as Resource['attachment'], value: value! };
  });
}
