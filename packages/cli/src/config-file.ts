import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Flags } from '@oclif/core';
import type { BusAccess } from '@slicelab/protocol';

/** The shipped default cluster (hosts h1, h2, h3), used when the current folder has no config. */
const shippedConfig = fileURLToPath(new URL('../../../cluster.config.json', import.meta.url));

export function defaultConfigFile(): string {
  return existsSync('cluster.config.json') ? 'cluster.config.json' : shippedConfig;
}

export const configFlag = Flags.string({ char: 'c', description: 'cluster config file [default: ./cluster.config.json, else the shipped default cluster]' });
export const clusterFlag = Flags.string({ description: 'cluster name (needed only when several run)' });
export const natsFlag = Flags.string({ description: 'bus URL of a cluster that has no run file here' });

/** How to join a bus that has no run file here: what `slicelab creds export` wrote, or the bus's own users. */
export const accessFlags = {
  creds: Flags.string({ description: 'NATS credentials file (slicelab creds export writes one)', dependsOn: ['nats'] }),
  user: Flags.string({ description: 'user name on the bus', dependsOn: ['nats'] }),
  password: Flags.string({ description: 'password of --user', dependsOn: ['user'] }),
  token: Flags.string({ description: 'token of the bus', dependsOn: ['nats'] }),
  'tls-ca': Flags.string({ description: 'PEM file of the CA that signed the bus\'s certificate', dependsOn: ['nats'] }),
  'tls-cert': Flags.string({ description: 'PEM certificate to present to the bus', dependsOn: ['tls-key'] }),
  'tls-key': Flags.string({ description: 'PEM key of --tls-cert', dependsOn: ['tls-cert'] }),
};

export function accessFrom(flags: { creds?: string; user?: string; password?: string; token?: string; 'tls-ca'?: string; 'tls-cert'?: string; 'tls-key'?: string }): Omit<BusAccess, 'servers'> {
  const tls = flags['tls-ca'] || flags['tls-cert'] ? { ca: flags['tls-ca'], cert: flags['tls-cert'], key: flags['tls-key'] } : undefined;
  return { creds: flags.creds, user: flags.user, password: flags.password, token: flags.token, tls };
}
