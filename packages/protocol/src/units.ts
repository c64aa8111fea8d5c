/**
 * The one units parser: sizes, rates and durations as people write them.
 *
 * Sizes follow the kernel and Docker: `4096`, `512K`, `256MiB`, `1G`, `1GB` (K/M/G/T are binary, as in
 * `memory.max` and `docker run -m`; KB/MB/GB are decimal; KiB/MiB/GiB binary). Rates follow tc(8):
 * `bit`, `kbit`, `mbit`, `gbit` are bits per second (SI), `kibit`… binary, and `bps`, `kbps`, `mbps` are
 * BYTES per second, exactly as tc reads them. Durations: `us`/`µs`, `ms`, `s`, `m`, `h`; a bare number is
 * refused for durations and rates because the unit is the whole point.
 */
import { SlicelabError } from './errors.js';

const sizeUnits: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
};

const rateUnits: Record<string, number> = {
  bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12,
  kibit: 1024, mibit: 1024 ** 2, gibit: 1024 ** 3, tibit: 1024 ** 4,
  bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9, tbps: 8e12,
  kibps: 8 * 1024, mibps: 8 * 1024 ** 2, gibps: 8 * 1024 ** 3, tibps: 8 * 1024 ** 4,
};

const durationUnits: Record<string, number> = { us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

const numberWithUnit = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zµ]*)\s*$/i;

function parse(kind: string, text: string | number, units: Record<string, number>, bareAllowed: boolean): number {
  if (typeof text === 'number') {
    if (!bareAllowed) throw new SlicelabError('EINVAL', `${kind} ${text} needs a unit (${Object.keys(units).filter(Boolean).join(', ')})`);
    if (!Number.isFinite(text) || text < 0) throw new SlicelabError('EINVAL', `${kind} must be a non-negative number, got ${text}`);
    return text;
  }
  const match = numberWithUnit.exec(text);
  if (!match) throw new SlicelabError('EINVAL', `not a ${kind}: "${text}"`);
  const unit = match[2]!.toLowerCase();
  if (unit === '' && !bareAllowed) throw new SlicelabError('EINVAL', `${kind} "${text}" needs a unit (${Object.keys(units).filter(Boolean).join(', ')})`);
  const factor = units[unit];
  if (factor === undefined) throw new SlicelabError('EINVAL', `unknown ${kind} unit "${match[2]}" in "${text}" (use ${Object.keys(units).filter(Boolean).join(', ')})`);
  return Number(match[1]) * factor;
}

/** Bytes, rounded down to a whole byte. */
export function parseSize(text: string | number): number {
  return Math.floor(parse('size', text, sizeUnits, true));
}

/** Bits per second. */
export function parseRate(text: string | number): number {
  return parse('rate', text, rateUnits, false);
}

/** Milliseconds (fractional below 1 ms). */
export function parseDuration(text: string | number): number {
  return parse('duration', text, durationUnits, false);
}

export function formatSize(bytes: number): string {
  const steps: Array<[number, string]> = [[1024 ** 4, 'TiB'], [1024 ** 3, 'GiB'], [1024 ** 2, 'MiB'], [1024, 'KiB']];
  for (const [factor, unit] of steps) if (bytes >= factor) return `${trim(bytes / factor)}${unit}`;
  return `${bytes}B`;
}

export function formatRate(bitsPerSecond: number): string {
  const steps: Array<[number, string]> = [[1e12, 'tbit'], [1e9, 'gbit'], [1e6, 'mbit'], [1e3, 'kbit']];
  for (const [factor, unit] of steps) if (bitsPerSecond >= factor) return `${trim(bitsPerSecond / factor)}${unit}`;
  return `${trim(bitsPerSecond)}bit`;
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0ms';
  if (ms >= 3600e3) return `${trim(ms / 3600e3)}h`;
  if (ms >= 60e3) return `${trim(ms / 60e3)}m`;
  if (ms >= 1e3) return `${trim(ms / 1e3)}s`;
  if (ms >= 1) return `${trim(ms)}ms`;
  return `${trim(ms * 1e3)}us`;
}

function trim(value: number): string {
  return Number(value.toFixed(2)).toString();
}

/** A percentage as tc writes netem's loss (`1%`, `0.5%`) or bare (`1`): 0..100. */
export function parsePercent(text: string | number): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%?\s*$/.exec(String(text));
  if (!match) throw new SlicelabError('EINVAL', `not a percentage: "${text}" (write 1% or 1)`);
  const percent = Number(match[1]);
  if (percent > 100) throw new SlicelabError('ERANGE', `${text} is above 100%`);
  return percent;
}
