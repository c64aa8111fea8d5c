/**
 * The one logger: pino, structured JSON lines. Host and service processes write into their file in the
 * cluster's run folder; without a file, lines go to stderr. No transport worker thread: a host's threads
 * are its cores.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, file?: string, level = process.env['SLICELAB_LOG_LEVEL'] ?? 'info'): Logger {
  const destination = file ? pino.destination({ dest: file, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ name, level, base: { pid: process.pid } }, destination);
}
