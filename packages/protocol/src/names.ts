/**
 * Names that end up in NATS subjects, file names and logs (Mininet's deterministic h1, h2, …): lower-case
 * letters, digits and dashes, starting with a letter, so a name is always exactly one subject token.
 */
import { SlicelabError } from './errors.js';

export const namePattern = /^[a-z][a-z0-9-]{0,62}$/;

/** `namePattern` in words, for the line that refuses a name */
export const nameRule = 'lower-case letters, digits and dashes, starting with a letter, at most 63';

/** Refuses a name that breaks the rule with EINVAL, naming `what` it was (a flag, "container name"). */
export function checkName(what: string, name: string): void {
  if (!namePattern.test(name)) throw new SlicelabError('EINVAL', `${what} "${name}" must be ${nameRule}`);
}
