/**
 * lu: a LU-like compute kernel with a real working set, the load for "how much work gets done" under CPU
 * shares and during migration. One work unit fills an n × n matrix (row-major doubles in container
 * memory) with a deterministic, diagonally dominant matrix seeded from the unit number, then factors it
 * in place by Doolittle's method without pivoting (diagonal dominance keeps every pivot away from zero):
 * afterwards the strict lower triangle holds L (unit diagonal implied) and the upper triangle holds U.
 *
 * Each step does one bounded slice of that work, a block of rows of the fill or a block of rows below
 * pivot k of the elimination, at most `luStepBudget` element updates, so a step stays short for any n
 * from 8 to 512 (up to n = 128 one step fills the whole matrix or eliminates one whole pivot column). The
 * pivot row is read as a copy, and only the rows a step writes are mapped with ctx.mem.f64, so the dirty
 * pages a migration sees are the ones the kernel really writes, a set that shrinks as k advances.
 *
 * The kernels below are pure and exported: `luReference` runs the same arithmetic outside the emulation
 * and `luResidual` checks that L·U gives back the original matrix.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

/**
 * Element updates per step: 20–50 µs of multiply-adds on a laptop core, and room for one whole pivot
 * column per step up to n = 128.
 */
export const luStepBudget = 16_384;
/** Matrix elements generated per fill step: the whole matrix in one step up to n = 128. */
export const luFillBudget = 16_384;

/**
 * Where a step reads its pivot row to: a scratch buffer that lives only within one step (steps never
 * interleave on a core), so reading the row allocates nothing and the garbage collector stays out of
 * the measurements lu is used for.
 */
const pivotRow = new Float64Array(512);
const pivotRowBytes = new Uint8Array(pivotRow.buffer);

/** A 32-bit integer hash (lowbias32). */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Rows [from, to) of unit `unit`'s matrix into `block`, whose first element is row `from`, column 0.
 * Each row draws from its own xorshift stream (seeded from the unit and the row), so any block of rows
 * comes out the same. Off-diagonal entries lie in (−1, 1) and the diagonal in (n, n + 1): strictly
 * diagonally dominant.
 */
export function luFillRows(block: Float64Array, n: number, unit: number, from: number, to: number): void {
  const seed = mix(unit + 0x51ed270b);
  for (let i = from; i < to; i++) {
    const row = (i - from) * n;
    let x = mix(seed ^ mix(i)) | 1;
    for (let j = 0; j < n; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const noise = (x >>> 0) / 0x1_0000_0000;
      block[row + j] = i === j ? n + noise : 2 * noise - 1;
    }
  }
}

/**
 * Eliminates column k from `rows` consecutive rows in `block` (each of n doubles, all below row k), given
 * pivot row k in `pivot`: each row's column k becomes its multiplier l, and columns after k lose l × pivot.
 */
export function luEliminate(pivot: Float64Array, block: Float64Array, n: number, k: number, rows: number): void {
  const diagonal = pivot[k]!;
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const l = block[base + k]! / diagonal;
    block[base + k] = l;
    for (let j = k + 1; j < n; j++) block[base + j]! -= l * pivot[j]!;
  }
}

/** Unit `unit`'s matrix and its factors, computed outside the emulation with the same kernels. */
export function luReference(n: number, unit: number): { original: Float64Array; factors: Float64Array } {
  const original = new Float64Array(n * n);
  luFillRows(original, n, unit, 0, n);
  const factors = original.slice();
  for (let k = 0; k < n - 1; k++) {
    luEliminate(factors.subarray(k * n, (k + 1) * n), factors.subarray((k + 1) * n), n, k, n - k - 1);
  }
  return { original, factors };
}

/** The largest |(L·U − A)ᵢⱼ| for factors stored as the kernel leaves them. */
export function luResidual(original: Float64Array, factors: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let m = 0; m <= Math.min(i, j); m++) {
        const l = m === i ? 1 : factors[i * n + m]!;
        sum += l * factors[m * n + j]!;
      }
      worst = Math.max(worst, Math.abs(sum - original[i * n + j]!));
    }
  }
  return worst;
}

type LuRegs = {
  n: number;
  phase: 'start' | 'alloc' | 'fill' | 'factor';
  addr: number;
  /** the unit in progress, which seeds its matrix */
  unit: number;
  /** the pivot column being eliminated */
  k: number;
  /** the next row to fill, or to eliminate below pivot k */
  row: number;
  /** when the first unit began (ctx.now) */
  firstMs: number;
  metrics: { units: number; unitsPerSecond: number };
};

export const lu = defineProgram<LuRegs>({
  name: 'lu',
  description: 'LU-factor an n×n matrix in memory again and again, counting work units (args: n=96, 8..512)',
  init(args) {
    const reader = new ArgReader('lu', args, ['n']);
    const n = reader.integer('n', 96, 8, 512);
    return {
      n, phase: 'start', addr: -1, unit: 0, k: 0, row: 0, firstMs: 0,
      metrics: { units: 0, unitsPerSecond: 0 },
    };
  },
  step(regs, ctx) {
    const n = regs.n;
    const rowBytes = n * 8;
    if (regs.phase === 'start' || regs.phase === 'alloc') {
      const ret = ctx.ret;
      if (regs.phase === 'alloc' && ret !== undefined) {
        if (!ret.ok) {
          ctx.log(`lu: cannot allocate a ${n}×${n} matrix: ${ret.errno}`);
          return { sys: 'exit', code: ret.errno === 'ENOMEM' ? 12 : 1 };
        }
        regs.addr = ret.value ?? 0;
        regs.phase = 'fill';
        regs.row = 0;
        regs.firstMs = ctx.now();
        return undefined;
      }
      regs.phase = 'alloc';
      return { sys: 'alloc', bytes: n * rowBytes };
    }

    if (regs.phase === 'fill') {
      const from = regs.row;
      const to = Math.min(n, from + Math.max(1, Math.floor(luFillBudget / n)));
      luFillRows(ctx.mem.f64(regs.addr + from * rowBytes, (to - from) * n), n, regs.unit, from, to);
      if (to < n) {
        regs.row = to;
      } else {
        regs.phase = 'factor';
        regs.k = 0;
        regs.row = 1;
      }
      return undefined;
    }

    const k = regs.k;
    const from = regs.row;
    const to = Math.min(n, from + Math.max(1, Math.floor(luStepBudget / (n - k))));
    ctx.mem.read(regs.addr + k * rowBytes, pivotRowBytes.subarray(0, rowBytes));
    luEliminate(pivotRow, ctx.mem.f64(regs.addr + from * rowBytes, (to - from) * n), n, k, to - from);
    if (to < n) {
      regs.row = to;
    } else if (k + 1 < n - 1) {
      regs.k = k + 1;
      regs.row = k + 2;
    } else {
      const metrics = regs.metrics;
      metrics.units++;
      metrics.unitsPerSecond = metrics.units / Math.max(1e-9, (ctx.now() - regs.firstMs) / 1000);
      regs.unit++;
      regs.phase = 'fill';
      regs.row = 0;
    }
    return undefined;
  },
});
