/** Bad configs and bad flags: one line naming the problem, a non-zero exit, nothing started. */
import test from 'ava';
import { readdirSync } from 'node:fs';
import { Harness, hostConfig } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

function nothingStarted(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }) {
  const left = readdirSync(h.home).filter((entry) => !entry.endsWith('.json'));
  t.deepEqual(left.flatMap((dir) => readdirSync(`${h.home}/${dir}`).filter((f) => f === 'run.json')), [], 'no run file');
}

const good = hostConfig('bad', ['h1', 'h2']);
const cases: Array<[string, unknown, RegExp]> = [
  ['not JSON', '{ "name": "bad", hosts: [ }', /bad\.json: not JSON: /],
  ['a missing field', { name: 'bad', hosts: [{ name: 'h1', cores: 2, uplink: '1gbit' }] }, /bad\.json: hosts\[0\]\.memory: missing$/],
  ['negative cores', { ...good, hosts: [{ ...good.hosts[0], cores: -2 }] }, /bad\.json: hosts\[0\]\.cores: must be at least 1 \(got -2\)$/],
  ['an unknown unit', { ...good, hosts: [{ ...good.hosts[0], memory: '1 gigglebyte' }] }, /bad\.json: hosts\[0\]\.memory: unknown size unit "gigglebyte"/],
  ['an unknown rate unit', { ...good, hosts: [{ ...good.hosts[0], uplink: '1 gigabit' }] }, /bad\.json: hosts\[0\]\.uplink: unknown rate unit "gigabit"/],
  ['a duplicate host name', { ...good, hosts: [good.hosts[0], good.hosts[0]] }, /bad\.json: hosts\[1\]\.name: duplicate host name "h1"/],
];

for (const [what, config, expected] of cases) {
  test.serial(`up refuses a config with ${what}`, async (t) => {
    const file = h.writeConfig('bad', config);
    for (const args of [['up', '--config', file], ['up', '--config', file, '--detach']]) {
      const result = await h.cli(args);
      t.is(result.code, 1);
      t.is(result.stdout, '');
      const lines = result.stderr.trim().split('\n');
      t.is(lines.length, 1, result.stderr);
      t.regex(lines[0]!, /^slicelab: /);
      t.regex(lines[0]!, expected);
      t.true(lines[0]!.includes(file), 'the line names the file');
    }
    nothingStarted(t);
  });
}

test.serial('a config file that does not exist', async (t) => {
  const result = await h.cliJson<{ error: { code: string; message: string } }>(['up', '--config', '/nope/cluster.json']);
  t.is(result.code, 1);
  t.deepEqual(result.error, { code: 'ECONFIG', message: '/nope/cluster.json: cannot read: ENOENT' });
});

const flagCases: Array<[string[], RegExp]> = [
  [['bench', 'startup', '--hosts', 'many'], /Expected an integer but received: many/],
  [['bench', 'startup', '--idle', '5 fortnights'], /unknown duration unit "fortnights"/],
  [['bench', 'isolation', '--rounds', '0'], /Expected an integer greater than or equal to 1/],
  [['bench', 'overhead', '--duration', 'soon'], /--duration: not a duration: "soon"/],
  [['bench', 'network', '--bandwidths', '10mbit,fast'], /--bandwidths "fast": /],
  [['bench', 'network', '--loss', '101%'], /--loss: 101% is above 100%/],
  [['bench', 'network', '--share-bandwidth', '0mbit'], /--share-bandwidth: a rate above 0/],
  [['bench', 'network', '--udp-bitrate', '50 gigglebit'], /--udp-bitrate: /],
  [['bench', 'network', '--omit', 'later'], /not a duration: "later"/],
  [['net', 'iperf', 'a', 'b', '--udp', '--omit', '2s'], /--udp=true cannot also be provided when using --omit/],
  [['host', '--nats', 'nats://127.0.0.1:4222', '--name', 'h1', '--cores', '300'], /--cores must be at most 256: each core is a worker thread/],
  [['container', 'top', '--interval', '0s'], /--interval must be at least 100ms/],
  [['host', '--name', 'h1'], /Missing required flag nats/],
  [['host', '--nats', 'nats://127.0.0.1:4222', '--name', 'H_1'], /--name "H_1" must be lower-case/],
  [['host', '--nats', 'nats://127.0.0.1:4222', '--name', 'h1', '--memory', 'lots'], /not a size: "lots"/],
  [['host', '--nats', 'nats://127.0.0.1:4222', '--name', 'h1', '--cores', '0'], /Expected an integer greater than or equal to 1/],
  [['container', 'logs'], /Missing 1 required arg/],
  [['container', 'logs', 'web', '--tail', '0'], /--tail: Expected an integer greater than or equal to 1/],
  [['status', '--bogus'], /Nonexistent flag: --bogus/],
  [['nosuch'], /^slicelab: unknown command "nosuch" \(see: slicelab --help\)$/],
  [['container', 'nosuch'], /^slicelab: unknown command "container nosuch" \(see: slicelab container --help\)$/],
  [['status', '--cluster', 'ghost'], /cluster "ghost" is not running/],
];

for (const [args, expected] of flagCases) {
  test.serial(`slicelab ${args.join(' ')}: one line, non-zero exit`, async (t) => {
    const result = await h.cli(args);
    t.not(result.code, 0);
    const lines = result.stderr.trim().split('\n');
    t.is(lines.length, 1, result.stderr);
    t.regex(lines[0]!, expected);
  });
}
