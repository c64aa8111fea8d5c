import { lifecycleCommand } from '../../lifecycle-command.js';

export default lifecycleCommand('kill', 'Kill every process of a container (SIGKILL; like cgroup.kill)');
