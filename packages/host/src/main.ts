/**
 * Entry of a host process started by the launcher:
 *   node main.js --nats URL --cluster NAME --spec '{"name":"h1",...}' [--launcher-pid PID]
 * Logs go to stderr, which the launcher points at the host's log file.
 */
import { parseArgs } from 'node:util';
import { createLogger, errorMessage, validate } from '@slicelab/protocol';
import { runHost } from './run.js';

const log = createLogger('host');
try {
  const { values } = parseArgs({
    options: { nats: { type: 'string' }, cluster: { type: 'string' }, spec: { type: 'string' }, 'launcher-pid': { type: 'string' } },
  });
  if (!values.nats || !values.cluster || !values.spec) throw new Error('usage: main.js --nats URL --cluster NAME --spec JSON [--launcher-pid PID]');
  const spec = validate.hostSpec(JSON.parse(values.spec));
  const code = await runHost({
    cluster: values.cluster, nats: values.nats, spec, log: log.child({ host: spec.name }),
    launcherPid: values['launcher-pid'] ? Number(values['launcher-pid']) : undefined,
  });
  log.flush();
  process.exit(code);
} catch (error) {
  log.fatal({ err: errorMessage(error) }, 'host cannot start');
  log.flush();
  process.exit(1);
}
