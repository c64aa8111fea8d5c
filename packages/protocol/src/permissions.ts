/**
 * Who may publish and subscribe where, per identity (subjects.ts): the permissions a cluster's
 * credentials carry, which nats-server enforces. A subject is born with its permission here.
 *
 *   host h:    answers only `host.<h>.…` and discovery; says only `from.<h>.…`; sends image chunks to
 *              other hosts' transfer subjects and to requesters' inboxes; speaks to other hosts' migration
 *              peer subjects (`host.*.migrate.*`, not the admin's `migration.*`); sends frames only as itself
 *              (`frames.<h>.*`) and hears those for it and broadcasts; its own host claim, the container
 *              names and the address leases in JetStream
 *   launcher:  the registry: hears `from.*.…`, answers `hosts.list`, publishes host events, reads host claims
 *   admin:     every request to every host, the registry, events and heartbeats, benchmarks' own subjects,
 *              and JetStream
 *
 * Replies go through `resp` (allow_responses): a subscriber may answer the requests it received, once
 * each, within `replyWindowMs`, and nothing else.
 */
import { clusterSubjects, type Identity } from './subjects.js';

export interface Permissions {
  pub: { allow: string[] };
  sub: { allow: string[] };
  /** answer each request received once, within ttl nanoseconds (NATS's unit in a user JWT) */
  resp: { max: number; ttl: number };
}

/** longer than any operation's timeout: a checkpoint of several GiB still gets its reply through */
export const replyWindowMs = 30 * 60_000;

/** The JetStream API subjects a key-value bucket's users need: open, read, write, list keys. */
function bucketUse(bucket: string, keys = '>'): string[] {
  const stream = `KV_${bucket}`;
  return [
    `$JS.API.STREAM.INFO.${stream}`, `$JS.API.STREAM.CREATE.${stream}`, `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`, `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`, `$JS.API.CONSUMER.CREATE.${stream}.>`, `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`, `$KV.${bucket}.${keys}`,
  ];
}

export function permissionsFor(cluster: string, who: Identity): Permissions {
  const s = clusterSubjects(cluster);
  const inbox = `${s.inbox(who)}.>`;
  const resp = { max: 1, ttl: replyWindowMs * 1e6 };
  switch (who.role) {
    case 'host':
      return {
        pub: {
          allow: [
            s.fromAll(who.host), s.imageTransfer('*', '*'), s.migrate('*', '*'), s.frames(who.host, '*'), `_INBOX.${cluster}.>`, '$JS.API.INFO',
            ...bucketUse(s.namesBucket), ...bucketUse(s.hostsBucket, who.host), ...bucketUse(s.leasesBucket),
          ],
        },
        sub: { allow: [s.hostAll(who.host), s.discover, s.frames('*', who.host), s.broadcast('*'), inbox] },
        resp,
      };
    case 'launcher':
      return {
        pub: { allow: [s.hostEvents, '$JS.API.INFO', ...bucketUse(s.hostsBucket, '*').filter((subject) => !subject.startsWith('$KV.'))] },
        sub: { allow: [s.anyRegister, s.anyHeartbeat, s.anyLeft, s.list, inbox] },
        resp,
      };
    case 'admin':
      return {
        pub: { allow: [s.hostAll('*'), s.list, s.discover, s.bench('>'), '$JS.API.>', `$KV.${s.namesBucket}.>`, `$KV.${s.hostsBucket}.>`, `$KV.${s.leasesBucket}.>`] },
        sub: { allow: [s.hostEvents, s.anyHeartbeat, s.bench('>'), inbox] },
        resp,
      };
  }
}
