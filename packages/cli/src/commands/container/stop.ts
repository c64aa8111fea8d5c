import { lifecycleCommand } from '../../lifecycle-command.js';

export default lifecycleCommand('stop', 'Stop a container: its processes end, the container stays until rm');
