import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Flags } from '@oclif/core';

/** The shipped default cluster (hosts h1, h2, h3), used when the current folder has no config. */
const shippedConfig = fileURLToPath(new URL('../../../cluster.config.json', import.meta.url));

export function defaultConfigFile(): string {
  return existsSync('cluster.config.json') ? 'cluster.config.json' : shippedConfig;
}

export const configFlag = Flags.string({ char: 'c', description: 'cluster config file [default: ./cluster.config.json, else the shipped default cluster]' });
export const clusterFlag = Flags.string({ description: 'cluster name (needed only when several run)' });
export const natsFlag = Flags.string({ description: 'bus URL of a cluster that has no run file here' });
