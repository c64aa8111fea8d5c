/**
 * What every command shares: `--json`, one clear line for any error (with a non-zero exit), and the
 * flag types that go through the one units parser.
 */
import { Command, Flags, Interfaces } from '@oclif/core';
import { SlicelabError, errorMessage, parseDuration, parsePercent, parseRate, parseSize, printable, printableLines } from '@slicelab/protocol';

export const unitFlags = {
  size: Flags.custom<number>({ parse: async (input) => parseSize(input) }),
  rate: Flags.custom<number>({ parse: async (input) => parseRate(input) }),
  duration: Flags.custom<number>({ parse: async (input) => parseDuration(input) }),
  percent: Flags.custom<number>({ parse: async (input) => parsePercent(input) }),
};

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;
  /** the error line names the errno too (as the kernel's would), not only --json */
  static errnoInText = false;

  /** Prints a line for people; nothing with --json, where the returned object is the output. Remote text in it is made printable. */
  protected say(line = ''): void {
    if (!this.jsonEnabled()) this.log(printableLines(line));
  }

  /** A line on stderr beside a result that is still good (a host that did not answer a cluster-wide question). */
  protected note(line: string): void {
    process.stderr.write(`slicelab: ${printable(line)}\n`);
  }

  /** Progress on stderr, only where a person watches a terminal. */
  protected progress(line: string): void {
    if (process.stderr.isTTY && !this.jsonEnabled()) process.stderr.write(`\r\x1b[K${line}`);
  }

  protected progressDone(): void {
    if (process.stderr.isTTY && !this.jsonEnabled()) process.stderr.write('\r\x1b[K');
  }

  protected override async catch(error: Interfaces.CommandError): Promise<void> {
    // a failed parse is still a parse: keeps oclif from adding its "did not parse" warning to our one line
    this.parsed = true;
    const line = printable(oneLine(error));
    if (this.jsonEnabled()) {
      // one line, as the error is without --json
      process.stdout.write(`${JSON.stringify({ error: { code: error instanceof SlicelabError ? error.code : 'EINVAL', message: line } })}\n`);
    } else {
      const errno = (this.constructor as typeof BaseCommand).errnoInText && error instanceof SlicelabError ? ` (${error.code})` : '';
      process.stderr.write(`slicelab: ${line}${errno}\n`);
    }
    const exit = (error as { oclif?: { exit?: number } }).oclif?.exit;
    process.exitCode = typeof exit === 'number' && exit !== 0 ? exit : 1;
  }
}

/**
 * oclif's parse errors span several lines ("Parsing --hosts", the reason, "See more help with --help");
 * folded into one line that names the flag and the reason.
 */
function oneLine(error: unknown): string {
  const lines = errorMessage(error)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^See more help/.test(line));
  const flag = /^Parsing (--\S+)/.exec(lines[0] ?? '');
  if (flag) return `${flag[1]}: ${lines.slice(1).join('; ')}`;
  if (/^The following errors? occurred/.test(lines[0] ?? '')) return lines.slice(1).join('; ');
  // "Missing 1 required arg:" introduces what follows it
  return lines.reduce((text, line) => (text === '' ? line : `${text}${text.endsWith(':') ? ' ' : '; '}${line}`), '').replace(/\s+/g, ' ');
}
