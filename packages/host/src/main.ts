/**
 * Entry of a host process started by the launcher:
 *   SLICELAB_BUS='{"servers":[…],"creds":…}' node main.js --cluster NAME --spec '{"name":"h1",...}' [--launcher-pid PID]
 * The bus access comes in the environment, which only this user can read, not on the command line.
 * Logs go to stderr, which the launcher points at the host's log file.
 */
import { parseArgs } from 'node:util';
import { busVariable, createLogger, errorMessage, validate, type BusAccess } from '@slicelab/protocol';
import { runHost } from './run.js';

const log = createLogger('host');
try {
  const { values } = parseArgs({
    options: { cluster: { type: 'string' }, spec: { type: 'string' }, 'launcher-pid': { type: 'string' } },
  });
  const bus = process.env[busVariable];
  if (!bus || !values.cluster || !values.spec) throw new Error(`usage: ${busVariable}=JSON main.js --cluster NAME --spec JSON [--launcher-pid PID]`);
  const spec = validate.hostSpec(JSON.parse(values.spec));
  const { code } = await runHost({
    cluster: values.cluster, access: JSON.parse(bus) as BusAccess, spec, log: log.child({ host: spec.name }),
    launcherPid: values['launcher-pid'] ? Number(values['launcher-pid']) : undefined,
  });
  log.flush();
  process.exit(code);
} catch (error) {
  log.fatal({ err: errorMessage(error) }, 'host cannot start');
  log.flush();
  process.exit(1);
}
