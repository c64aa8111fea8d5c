/**
 * Text from elsewhere (a host's error, a program's log line, a machine name) made safe for a terminal:
 * ANSI escape sequences, control characters and bidirectional overrides are stripped, so a remote
 * string can neither recolour, move the cursor, retitle the window nor forge extra lines.
 */
const escapes = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][\s\S]*?(?:\x07|\x1b\\)|\x1b[P^_][\s\S]*?\x1b\\|\x1b[@-Z\\-_]?/g;
const controls = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/** One line: escapes and controls stripped, line breaks and tabs turned into spaces. */
export function printable(text: string): string {
  return text.replace(escapes, '').replace(/[\r\n\t]+/g, ' ').replace(controls, '');
}

/** Several lines (a table): as `printable`, but line breaks stay. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}
