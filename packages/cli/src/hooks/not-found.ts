/** An unknown command gets the same one line as any other error, and exit code 2 as a usage error does. */
import type { Hook } from '@oclif/core';

const hook: Hook<'command_not_found'> = async function (options) {
  const typed = options.id.replaceAll(':', ' ');
  const topic = typed.includes(' ') ? typed.slice(0, typed.lastIndexOf(' ')) : '';
  process.stderr.write(`slicelab: unknown command "${typed}" (see: slicelab ${topic ? `${topic} ` : ''}--help)\n`);
  process.exitCode = 2;
};

export default hook;
