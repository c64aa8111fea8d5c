/**
 * A sliding window of acknowledgements over an unreliable request channel: at most `window` items in
 * flight, each sent again when its ack is late. Core NATS drops messages for a slow consumer and a host
 * may vanish, so a migration's batches never count as delivered until the destination said so.
 *
 * The channel is a function (a NATS request in the host, a lossy in-memory one in the unit tests): it
 * resolves when the item was acknowledged and rejects when it was not; `retryable` tells a lost message
 * (send again) from a refusal (fail the whole window).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WindowOptions {
  /** items in flight at once */
  window: number;
  /** how long to wait for an ack before sending again */
  timeoutMs: number;
  /** how often one item is sent again before the window fails (Infinity: for ever, as postcopy must) */
  retries: number;
  /** which failures are a lost message or ack rather than a refusal */
  retryable: (error: unknown) => boolean;
  /** called each time an item is sent again, and when acks flow again after that */
  onStall?: (stalled: boolean) => void;
  /** pause before sending again after a failure that came back at once (nobody listening) */
  backoffMs?: number;
}

export class AckWindow<T> {
  private inFlight = 0;
  private waiters: Array<() => void> = [];
  private failure: unknown;
  private stalled = false;
  retransmits = 0;
  acked = 0;

  constructor(private readonly deliver: (item: T, timeoutMs: number) => Promise<void>, private readonly options: WindowOptions) {}

  /** Resolves once the item is on its way (there was room in the window); throws the window's failure. */
  async send(item: T): Promise<void> {
    while (this.inFlight >= this.options.window && this.failure === undefined) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure !== undefined) throw this.failure;
    this.inFlight++;
    void this.run(item);
  }

  /** Resolves when every item sent so far was acknowledged; throws the window's failure. */
  async drain(): Promise<void> {
    while (this.inFlight > 0 && this.failure === undefined) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure !== undefined) throw this.failure;
  }

  /** Ends the window: whatever is in flight is given up, every waiter gets `error`. */
  fail(error: unknown): void {
    this.failure ??= error;
    this.wakeAll();
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  private async run(item: T): Promise<void> {
    try {
      for (let attempt = 0; this.failure === undefined; attempt++) {
        const began = performance.now();
        try {
          await this.deliver(item, this.options.timeoutMs);
          this.acked++;
          if (this.stalled) {
            this.stalled = false;
            this.options.onStall?.(false);
          }
          return;
        } catch (error) {
          if (!this.options.retryable(error) || attempt >= this.options.retries) {
            this.fail(error);
            return;
          }
          this.retransmits++;
          if (!this.stalled) {
            this.stalled = true;
            this.options.onStall?.(true);
          }
          // a failure that came back at once (no responders) would spin: wait as long as a lost ack would
          const quick = performance.now() - began < this.options.timeoutMs / 2;
          if (quick) await sleep(this.options.backoffMs ?? this.options.timeoutMs);
        }
      }
    } finally {
      this.inFlight--;
      this.wakeAll();
    }
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
