import { lifecycleCommand } from '../../lifecycle-command.js';

export default lifecycleCommand('start', 'Start a stopped container again (its program from the beginning)');
