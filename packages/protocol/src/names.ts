/**
 * Names that end up in NATS subjects, file names and logs (Mininet's deterministic h1, h2, …): lower-case
 * letters, digits and dashes, starting with a letter, so a name is always exactly one subject token.
 */
export const namePattern = /^[a-z][a-z0-9-]{0,62}$/;

export function isValidName(name: string): boolean {
  return namePattern.test(name);
}
