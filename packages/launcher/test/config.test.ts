import test from 'ava';
import { readFileSync } from 'node:fs';
import { ConfigError } from '@slicelab/protocol';
import { clusterConfigJsonSchema, loadConfig, parseConfig } from '@slicelab/launcher';

const root = new URL('../../../', import.meta.url);
const good = { name: 'lab', hosts: [{ name: 'h1', cores: 2, memory: '1GiB', uplink: '1gbit' }] };

function problem(raw: unknown): string {
  const error = (() => {
    try {
      parseConfig(raw, 'c.json', '/tmp');
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError for ${JSON.stringify(raw)}`);
  return error.message;
}

test('the shipped default cluster: h1, h2, h3 with 2 cores, 1 GiB and a 1 gbit uplink each', (t) => {
  const config = loadConfig(new URL('cluster.config.json', root).pathname);
  t.is(config.name, 'default');
  t.deepEqual(config.hosts.map((h) => h.name), ['h1', 'h2', 'h3']);
  for (const host of config.hosts) {
    t.is(host.cores, 2);
    t.is(host.memory, 1024 ** 3);
    t.deepEqual(host.uplink, { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 });
  }
});

test('an uplink is optional (1gbit, as `slicelab host --uplink`); bus files are relative to the config', (t) => {
  const config = parseConfig({ ...good, nats: { servers: ['tls://bus:4222'], creds: 'lab.creds', tls: { ca: 'ca.pem' } }, hosts: [{ name: 'h1', cores: 2, memory: '1GiB' }] }, 'c.json', '/etc/lab');
  t.deepEqual(config.hosts[0]!.uplink, { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 });
  t.is(config.nats?.creds, '/etc/lab/lab.creds');
  t.is(config.nats?.tls?.ca, '/etc/lab/ca.pem');
});

test('an uplink may be a full link model', (t) => {
  const config = parseConfig({ ...good, hosts: [{ ...good.hosts[0], uplink: { bandwidth: '100mbit', delay: '5ms', jitter: '1ms', loss: 0.5 } }] }, 'c.json', '/tmp');
  t.deepEqual(config.hosts[0]!.uplink, { bandwidth: 1e8, delay: 5, jitter: 1, loss: 0.5, maxQueue: 1000 });
});

test('bad configs name the file, the field path and what is wrong', (t) => {
  t.is(problem({ ...good, hosts: [{ ...good.hosts[0], cores: -2 }] }), 'c.json: hosts[0].cores: must be at least 1 (got -2)');
  t.is(problem({ ...good, hosts: [{ ...good.hosts[0], memory: '1GQ' }] }), 'c.json: hosts[0].memory: unknown size unit "GQ" in "1GQ" (use b, k, m, g, t, kib, mib, gib, tib, kb, mb, gb, tb) (got "1GQ")');
  t.is(problem({ ...good, hosts: [good.hosts[0], good.hosts[0]] }), 'c.json: hosts[1].name: duplicate host name "h1" (got "h1")');
  t.is(problem({ hosts: good.hosts }), 'c.json: name: missing');
  t.is(problem({ ...good, hosts: [{ name: 'h1', cores: 2, uplink: '1gbit' }] }), 'c.json: hosts[0].memory: missing');
  t.regex(problem({ ...good, hosts: [{ ...good.hosts[0], cores: 1000 }] }), /^c\.json: hosts\[0\]\.cores: must be at most 256: each core is a worker thread/);
  t.is(problem({ ...good, nats: { creds: 'x.creds' } }), 'c.json: nats.creds: is for joining existing servers; the embedded server makes its own credentials (got "x.creds")');
  t.is(problem({ ...good, nats: { servers: ['nats://a:4222'], listen: '0.0.0.0:4222' } }), 'c.json: nats.listen: is for the embedded server; with servers, slicelab starts none (got "0.0.0.0:4222")');
  t.is(problem({ ...good, nats: { listen: '4222' } }), 'c.json: nats.listen: must be HOST:PORT, e.g. "0.0.0.0:4222" (got "4222")');
  t.is(problem({ ...good, hots: [] }), 'c.json: unknown field "hots"');
  t.regex(problem({ ...good, hosts: [] }), /^c\.json: hosts: must name at least one host/);
  t.regex(problem({ ...good, name: 'My Lab' }), /^c\.json: name: must be lower-case/);
  t.regex(problem({ ...good, nats: { servers: ['localhost:4222'] } }), /^c\.json: nats\.servers\[0\]: must be a nats:\/\/ or tls:\/\/ URL/);
  t.regex(problem({ ...good, hosts: [{ ...good.hosts[0], uplink: { bandwidth: '1gbit', delay: '5' } }] }), /hosts\[0\]\.uplink/);
});

test('a file that is missing or not JSON', (t) => {
  t.throws(() => loadConfig('/nonexistent/c.json'), { instanceOf: ConfigError, message: '/nonexistent/c.json: cannot read: ENOENT' });
  const notJson = new URL('../../../package-lock.json', import.meta.url).pathname.replace('package-lock.json', 'README.md');
  t.throws(() => loadConfig(notJson), { instanceOf: ConfigError, message: /README\.md: not JSON: / });
});

test('cluster.schema.json is what the validator generates', (t) => {
  const committed = JSON.parse(readFileSync(new URL('cluster.schema.json', root), 'utf8'));
  t.deepEqual(committed, JSON.parse(JSON.stringify(clusterConfigJsonSchema())), 'run `npm run schema` to regenerate it');
});
