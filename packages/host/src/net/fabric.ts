/**
 * The fabric: Ethernet frames between hosts' uplinks, as NATS messages on `frames.<from>.<to>` (to a
 * host) and `frames.<from>._all` (broadcast). Only host <from>'s credential may publish under its name,
 * so the sender of a frame is the subject's, not what the frame claims. Frames an uplink hands over
 * within one task (a message off the bus, a system call) for the same destination travel together (as GSO batches segments),
 * in messages of at most `maxMessageBytes`: the server refuses one above its max_payload (1 MiB by
 * default), and a TCP window in flight is larger. The link model has counted each frame already. A
 * message that is not a list of frames of Ethernet size is dropped and counted, never a crash; a publish
 * that fails loses its frames, as a link that went down would, and is counted too.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { clusterSubjects, decode, encode, type BusCounters } from '@slicelab/protocol';

/** the largest frame on the fabric: an IPv4 packet of 65535 bytes (a TCP segment its nic offloaded) and 14 of Ethernet header */
export const maxFrameBytes = 14 + 65535;
/** the smallest: an Ethernet header and the padding to 60 bytes a nic adds */
export const minFrameBytes = 14;

export interface FabricStats {
  messagesSent: number;
  framesSent: number;
  /** the frames' bytes in the messages sent */
  bytesSent: number;
  framesReceived: number;
  /** frames of publishes that failed (the bus reconnecting, a message the server refused) */
  framesLost: number;
  lastError: string | null;
}

/** a quarter of NATS's default max_payload: a message of frames never nears the server's limit */
export const maxMessageBytes = 256 * 1024;

export const broadcastHost = '_all';

/** Frames in order, in runs of at most `maxBytes` (a frame larger than that alone). */
export function batches(frames: Uint8Array[], maxBytes: number): Uint8Array[][] {
  const runs: Uint8Array[][] = [];
  let run: Uint8Array[] = [];
  let bytes = 0;
  for (const frame of frames) {
    if (run.length > 0 && bytes + frame.length > maxBytes) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(frame);
    bytes += frame.length;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

export class Fabric {
  readonly stats: FabricStats = { messagesSent: 0, framesSent: 0, bytesSent: 0, framesReceived: 0, framesLost: 0, lastError: null };
  private readonly subjects;
  private readonly outbox = new Map<string, Uint8Array[]>();
  private flushing = false;
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly nc: NatsConnection,
    cluster: string,
    private readonly host: string,
    private readonly counters: BusCounters,
    onFrames: (from: string, frames: Uint8Array[]) => void,
  ) {
    this.subjects = clusterSubjects(cluster);
    const receive = (error: Error | null, msg: { subject: string; data: Uint8Array }) => {
      if (error) return;
      const from = msg.subject.split('.')[3] ?? '';
      if (from === host) return;
      const frames = this.frames(msg.subject, msg.data);
      if (!frames) return;
      this.stats.framesReceived += frames.length;
      onFrames(from, frames);
    };
    this.subscriptions.push(
      nc.subscribe(this.subjects.frames('*', host), { callback: receive }),
      nc.subscribe(this.subjects.broadcast('*'), { callback: receive }),
    );
  }

  /** Queues a frame for host `to` (or every host: `broadcastHost`); sent when the task that made it ends (a microtask). */
  send(to: string, frame: Uint8Array): void {
    const queue = this.outbox.get(to);
    if (queue) queue.push(frame);
    else this.outbox.set(to, [frame]);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => this.flush());
  }

  close(): void {
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.outbox.clear();
  }

  private flush(): void {
    this.flushing = false;
    if (this.nc.isClosed()) return this.outbox.clear();
    for (const [to, frames] of this.outbox) {
      const subject = to === broadcastHost ? this.subjects.broadcast(this.host) : this.subjects.frames(this.host, to);
      for (const batch of batches(frames, maxMessageBytes)) this.publish(subject, batch);
    }
    this.outbox.clear();
  }

  private publish(subject: string, frames: Uint8Array[]): void {
    try {
      this.nc.publish(subject, encode(frames));
      this.stats.messagesSent += 1;
      this.stats.framesSent += frames.length;
      for (const frame of frames) this.stats.bytesSent += frame.length;
    } catch (error) {
      // lost, as on a link that went down; the streams above retransmit
      this.stats.framesLost += frames.length;
      this.stats.lastError = (error as Error).message;
    }
  }

  private frames(subject: string, data: Uint8Array): Uint8Array[] | undefined {
    let value: unknown;
    try {
      value = decode(data);
    } catch (error) {
      return this.drop(subject, (error as Error).message);
    }
    if (!Array.isArray(value) || value.length === 0) return this.drop(subject, 'not a list of frames');
    for (const frame of value) {
      if (!(frame instanceof Uint8Array) || frame.length < minFrameBytes || frame.length > maxFrameBytes) {
        return this.drop(subject, `a frame of ${frame instanceof Uint8Array ? `${frame.length} bytes` : typeof frame}`);
      }
    }
    // decoded frames are views into the message, whose buffer the client may reuse: each is copied out
    return (value as Uint8Array[]).map((frame) => frame.slice());
  }

  private drop(subject: string, problem: string): undefined {
    this.counters.dropped += 1;
    this.counters.lastProblem = `${subject}: ${problem}`;
    return undefined;
  }
}
