/**
 * A cluster only its members can drive: the embedded nats-server refuses connections without the
 * cluster's credentials, a host's credential lets it speak only as itself, a second host of a taken name
 * is refused, and the registry believes only the instance that holds a host's name claim.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { clusterSubjects, connectBus, encode, readCredential, type BusAccess, type HostList } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { Harness, hostConfig, oneLineError, poll, pollUntil } from './harness.js';

const h = new Harness();
// the longest cluster name there may be: every credential carries its subjects in a JWT, which each host
// sends in its CONNECT line, and the server must still take that line
const cluster = `sec${'-x'.repeat(30)}`;
const s = clusterSubjects(cluster);
let admin: ClusterClient;
let access: BusAccess;

test.before(async () => {
  await h.up(h.writeConfig(cluster, hostConfig(cluster, ['h1', 'h2'])));
  access = h.runFile(cluster)!.access!;
  const { servers, ...auth } = access;
  admin = await ClusterClient.connect({ nats: servers.join(','), access: auth });
});
test.after.always(async () => {
  await admin?.close();
  await h.cli(['down', '--cluster', cluster]);
  await h.cleanup();
});

/** A connection with `creds`, and the permission errors the server sends it. */
async function as(creds: string): Promise<{ nc: NatsConnection; denied: string[] }> {
  const nc = await connectBus({ servers: access.servers, creds }, { name: 'test' });
  const denied: string[] = [];
  void (async () => {
    for await (const event of nc.status()) if (event.type === 'error') denied.push(String(event.error));
  })();
  return { nc, denied };
}

const record = async (name: string) => (await admin.registry()).hosts.find((x) => x.name === name)!;

test.serial('a connection without credentials is refused, by the server and in one line by the CLI', async (t) => {
  const error = await t.throwsAsync(connect({ servers: access.servers, reconnect: false }));
  t.regex(error!.message, /authorization violation/i);
  const status = await h.cli(['status', '--nats', access.servers[0]!, '--cluster', cluster]);
  oneLineError(t, status, /the bus at nats:\/\/127\.0\.0\.1:\d+ refused no credentials \(authorization violation\)/, 'status without credentials');
  t.is((await h.cli(['status'])).code, 0, 'with the run file, the CLI uses the admin credential');
});

test.serial('credentials are the server\'s own: a .creds file per identity, mode 0600, naming its cluster and role', async (t) => {
  const file = await h.hostCreds(cluster, 'h7');
  const { readFileSync, statSync } = await import('node:fs');
  t.is(statSync(file).mode & 0o777, 0o600);
  t.deepEqual(readCredential(readFileSync(file, 'utf8')), { cluster, identity: { role: 'host', host: 'h7' } });
  for (const secret of ['auth/keys.json', 'auth/nats-server.conf', 'auth/admin.creds', 'run.json']) {
    t.is(statSync(join(h.home, cluster, secret)).mode & 0o777, 0o600, secret);
  }
  const admin = await h.cliJson<{ role: string; file: string }>(['creds', 'export', '--role', 'admin', '--out', join(h.home, 'admin.creds')]);
  t.is(admin.role, 'admin');
  const remote = await h.cliJson<{ hosts: Array<{ name: string }> }>(['status', '--nats', access.servers[0]!, '--creds', admin.file]);
  t.deepEqual(remote.hosts.map((x) => x.name), ['h1', 'h2'], 'an exported admin credential drives the cluster from elsewhere');
  oneLineError(t, await h.cli(['creds', 'export', '--role', 'host', '--out', join(h.home, 'x.creds')]), /--host is required with --role host/);
  oneLineError(t, await h.cli(['creds', 'export', '--role', 'admin', '--host', 'h1', '--out', join(h.home, 'x.creds')]), /--host goes with --role host only/);
});

test.serial('a host credential speaks only as its host: no records, heartbeats, goodbyes or requests for another', async (t) => {
  const { nc, denied } = await as(await h.hostCreds(cluster, 'h9'));
  t.teardown(() => nc.close());
  const h2 = await record('h2');
  const forged = { name: 'h2', instance: h2.instance, at: Date.now() };
  nc.publish(s.hostLeft('h2'), encode(forged));
  nc.publish(s.hostEvents, encode({ kind: 'left', host: 'h2', at: Date.now() }));
  nc.publish(s.hostHeartbeat('h2'), encode({ ...forged, seq: 1, scheduler: h2.scheduler, load1: 0, elu: 0, rss: 1, containers: 0 }));
  nc.publish(s.hostRegister('h2'), encode({ ...h2, cores: 1024, pid: 1 }));
  nc.publish(s.container('h1', 'rm'), encode({ name: 'x', force: true }));
  nc.subscribe(s.hostAll('h1'));
  await nc.flush().catch(() => {});
  t.true(await pollUntil(() => denied.length >= 6, 5000), `denied: ${denied.join(' | ')}`);
  for (const subject of [s.hostLeft('h2'), s.hostEvents, s.hostHeartbeat('h2'), s.hostRegister('h2'), s.container('h1', 'rm'), s.hostAll('h1')]) {
    t.true(denied.some((d) => d.includes(subject)), `the server refused ${subject}`);
  }
  await sleep(1500);
  const after = await record('h2');
  t.deepEqual([after.state, after.pid, after.cores, after.instance], ['up', h2.pid, h2.cores, h2.instance], 'h2 is as it was');
});

test.serial('an admin sends requests but cannot speak as a host either', async (t) => {
  const { nc, denied } = await as(join(h.home, cluster, 'auth', 'admin.creds'));
  t.teardown(() => nc.close());
  nc.publish(s.hostLeft('h1'), encode({ name: 'h1', instance: 'x', at: Date.now() }));
  nc.publish(s.hostRegister('h9'), encode({}));
  await nc.flush().catch(() => {});
  t.true(await pollUntil(() => denied.length >= 2, 5000), `denied: ${denied.join(' | ')}`);
  t.is((await record('h1')).state, 'up');
});

test.serial('what a host says counts only from the instance that holds its name', async (t) => {
  // h1's own credential, in a second process: it may publish on h1's subjects, but it is not h1's instance
  const { nc } = await as(await h.hostCreds(cluster, 'h1'));
  t.teardown(() => nc.close());
  const before = await admin.registry();
  const h1 = before.hosts.find((x) => x.name === 'h1')!;
  nc.publish(s.hostLeft('h1'), encode({ name: 'h1', instance: 'impostor', at: Date.now() }));
  nc.publish(s.hostHeartbeat('h1'), encode({ name: 'h1', instance: 'impostor', seq: 0, at: Date.now(), scheduler: h1.scheduler, load1: 99, elu: 1, rss: 1, containers: 99 }));
  await nc.flush();
  let after: HostList = before;
  for (let i = 0; i < 20 && after.dropped < before.dropped + 2; i++) after = await admin.registry();
  t.is(after.dropped - before.dropped, 2, 'both dropped and counted');
  const now = after.hosts.find((x) => x.name === 'h1')!;
  t.deepEqual([now.state, now.instance], ['up', h1.instance]);
  t.not(now.containers, 99);
});

test.serial('a second host of the same name is refused in one line and exits', async (t) => {
  const creds = await h.hostCreds(cluster, 'h1');
  const second = await h.cli(['host', '--nats', access.servers[0]!, '--creds', creds], 30_000);
  t.is(second.code, 1);
  t.regex(second.stderr, /^slicelab: host h1 is already running \(pid \d+ on .+, renewed \d+ s ago\); a second one cannot join\n$/);
  const mismatch = await h.cli(['host', '--nats', access.servers[0]!, '--creds', creds, '--name', 'h5'], 30_000);
  t.is(mismatch.stderr.replace(/in \S*h1\.creds/, 'in h1.creds'), `slicelab: the credential in h1.creds is for host h1 of cluster ${cluster}, not for host h5 of cluster ${cluster}\n`);
  t.is((await record('h1')).state, 'up', 'the real h1 is untouched');
  const containers = await admin.survey();
  t.deepEqual(containers.missing, []);
});

test.serial('a host that was lost and comes back is the same host again', async (t) => {
  await admin.runContainer('h2', { name: 'keeper', program: 'sleeper' });
  const before = await record('h2');
  process.kill(before.pid, 'SIGSTOP');
  try {
    const lost = await poll(() => record('h2'), (r) => r.state === 'lost', 60, 100);
    t.is(lost.state, 'lost', 'h2 is marked lost while stopped');
  } finally {
    process.kill(before.pid, 'SIGCONT');
  }
  const back = await poll(() => record('h2'), (r) => r.state === 'up', 50, 100);
  t.deepEqual([back.state, back.instance, back.pid], ['up', before.instance, before.pid]);
  t.deepEqual((await admin.containers('h2')).map((c) => [c.name, c.state]), [['keeper', 'running']]);
});

/** A port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A CA and a server certificate for 127.0.0.1 (and localhost, the name the NATS client checks for a loopback address) signed by it, made with openssl. */
function pki(dir: string) {
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=slicelab test CA', '-keyout', at('ca.key'), '-out', at('ca.pem'));
  openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=bus', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', at('bus.key'), '-out', at('bus.csr'));
  openssl('x509', '-req', '-in', at('bus.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-days', '2', '-copy_extensions', 'copy', '-out', at('bus.pem'));
  return { ca: at('ca.pem'), cert: at('bus.pem'), key: at('bus.key') };
}

test.serial('a bus for several machines: the embedded server at a set address, speaking TLS, with the credentials', async (t) => {
  const tls = pki(join(h.home, 'pki'));
  const port = await freePort();
  const config = h.writeConfig('wide', { name: 'wide', nats: { listen: `127.0.0.1:${port}`, tls }, hosts: [{ name: 'h1', cores: 1, memory: '256MiB' }] });
  const up = await h.cli(['up', '--config', config, '--detach']);
  t.is(up.code, 0, up.stderr);
  t.teardown(() => h.cli(['down', '--cluster', 'wide']).then(() => undefined));
  const url = `tls://127.0.0.1:${port}`;
  t.is(h.runFile('wide')!.natsUrl, url, 'the server says it speaks TLS');
  const status = await h.cliJson<{ hosts: Array<{ name: string; state: string }> }>(['status', '--cluster', 'wide']);
  t.deepEqual(status.hosts.map((x) => [x.name, x.state]), [['h1', 'up']], 'the launcher, its host and the CLI speak TLS');

  const creds = await h.hostCreds('wide', 'h2');
  const unverified = await h.cli(['host', '--nats', url, '--creds', creds], 30_000);
  t.is(unverified.code, 1);
  t.regex(unverified.stderr, /^slicelab: cannot reach the bus at tls:\/\/127\.0\.0\.1:\d+ \(.*certificate.*\)\n$/i, 'a server whose certificate cannot be verified is not joined');
  const lone = h.start(['host', '--nats', url, '--creds', creds, '--tls-ca', tls.ca]);
  t.true(await pollUntil(() => /host h2 joined cluster wide/.test(lone.output()), 20_000), lone.output());
  lone.child.kill('SIGTERM');
  t.is(await lone.exited, 0);
});

test.serial('text from a container reaches the terminal without its escape sequences; --json keeps it, escaped', async (t) => {
  await admin.runContainer('h1', { name: 'shouty', program: 'sleeper' });
  const raw = '\x1b[2J\x1b]0;pwned\x07red\nslicelab: forged';
  await admin.exec('shouty', 'fs', { op: 'write', path: '/tmp/x', data: raw });
  // the write runs in its own process: read until the file is there
  const logs = await poll(async () => {
    await admin.exec('shouty', 'fs', { op: 'read', path: '/tmp/x' });
    await sleep(100);
    return h.cli(['container', 'logs', '--cluster', cluster, 'shouty']);
  }, (r) => /forged/.test(r.stdout), 20, 0);
  t.is(logs.code, 0, logs.stderr);
  t.false(/[\x00-\x09\x0b-\x1f\x7f]/.test(logs.stdout), JSON.stringify(logs.stdout));
  // fs logs a file line by line, each under its pid: the terminal shows just that, no cleared screen, no title
  t.regex(logs.stdout, /^\[\d+\] red\n\[\d+\] slicelab: forged$/m);
  t.notRegex(logs.stdout, /pwned/);
  const json = await h.cliJson<{ lines: string[] }>(['container', 'logs', '--cluster', cluster, 'shouty']);
  t.true(json.lines.some((line) => line.endsWith(raw.split('\n')[0]!)), 'JSON carries the text as it was');
});
