/**
 * Joining a bus: how a process authenticates (`BusAccess`: a NATS credentials file, a user and password,
 * or a token, and TLS) and the one place that turns the NATS client's failures into one line saying what
 * was unreachable or refused, with its URL. Host, launcher, CLI and client library all connect here.
 *
 * A slicelab credential is a standard NATS `.creds` file (a user JWT and its nkey seed) whose JWT carries
 * tags naming the cluster and the identity (`slicelab-cluster:lab`, `slicelab-role:host`,
 * `slicelab-host:h4`); the connection then uses that identity's inbox, the only one it may subscribe to.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, errors as natsErrors, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { SlicelabError, errorMessage } from './errors.js';
import { clusterSubjects, type Identity } from './subjects.js';

export interface BusAccess {
  /** nats:// or tls:// URLs of one NATS cluster */
  servers: string[];
  /** a NATS credentials file (user JWT + nkey seed) */
  creds?: string;
  user?: string;
  password?: string;
  token?: string;
  /** PEM files; `ca` alone verifies the server, `cert` and `key` authenticate this side too */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** the environment variable that hands a launched host its bus access (JSON BusAccess), kept off the command line */
export const busVariable = 'SLICELAB_BUS';

/** What a slicelab credential says it is. */
export interface Credential {
  cluster: string;
  identity: Identity;
}

export interface BusOptions {
  /** the connection's name as the server's monitoring shows it */
  name: string;
  /** how long a reconnect may keep trying before the connection closes for good (default: forever) */
  reconnectForMs?: number;
  reconnectWaitMs?: number;
  /** ms to wait for the first connection */
  timeoutMs?: number;
}

const tagPrefix = 'slicelab-';

/** The tags that mark a credential as slicelab's (written into the user JWT). */
export function credentialTags(cluster: string, who: Identity): string[] {
  return [`${tagPrefix}cluster:${cluster}`, `${tagPrefix}role:${who.role}`, ...(who.role === 'host' ? [`${tagPrefix}host:${who.host}`] : [])];
}

/** The cluster and identity a `.creds` file's JWT names, or undefined for a credential that is not slicelab's. */
export function readCredential(text: string): Credential | undefined {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)\s*------END NATS USER JWT------/.exec(text)?.[1];
  if (!jwt) throw new SlicelabError('EINVAL', 'not a NATS credentials file (no user JWT in it)');
  let claims: { nats?: { tags?: string[] } };
  try {
    claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    throw new SlicelabError('EINVAL', 'not a NATS credentials file (its JWT does not decode)');
  }
  const tags = new Map((claims.nats?.tags ?? []).filter((t) => t.startsWith(tagPrefix)).map((t) => t.slice(tagPrefix.length).split(':') as [string, string]));
  const cluster = tags.get('cluster');
  const role = tags.get('role');
  if (!cluster || !role) return undefined;
  if (role === 'host') {
    const host = tags.get('host');
    return host ? { cluster, identity: { role, host } } : undefined;
  }
  return role === 'admin' || role === 'launcher' ? { cluster, identity: { role } } : undefined;
}

/** Reads the credential file of `access`, if any: its text and what it names. */
export function loadCredential(access: BusAccess): { text: string; credential?: Credential } | undefined {
  if (!access.creds) return undefined;
  let text: string;
  try {
    text = readFileSync(access.creds, 'utf8');
  } catch (error) {
    throw new SlicelabError('ENOENT', `cannot read the credentials file ${access.creds}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`);
  }
  try {
    return { text, credential: readCredential(text) };
  } catch (error) {
    throw new SlicelabError('EINVAL', `${access.creds}: ${errorMessage(error)}`);
  }
}

/** Where a connection made with `access` receives replies: its identity's inbox for a slicelab credential, else NATS's default. */
export function inboxPrefix(access: BusAccess): string {
  const credential = loadCredential(access)?.credential;
  return credential ? clusterSubjects(credential.cluster).inbox(credential.identity) : '_INBOX';
}

export async function connectBus(access: BusAccess, options: BusOptions): Promise<NatsConnection> {
  const loaded = loadCredential(access);
  const credential = loaded?.credential;
  const waitMs = options.reconnectWaitMs ?? 250;
  const settings: ConnectionOptions = {
    servers: access.servers,
    name: options.name,
    timeout: options.timeoutMs ?? 5000,
    reconnectTimeWait: waitMs,
    maxReconnectAttempts: options.reconnectForMs === undefined ? -1 : Math.max(1, Math.round(options.reconnectForMs / waitMs)),
  };
  if (loaded) settings.authenticator = credsAuthenticator(new TextEncoder().encode(loaded.text));
  if (access.user !== undefined) Object.assign(settings, { user: access.user, pass: access.password ?? '' });
  if (access.token !== undefined) settings.token = access.token;
  if (access.tls) settings.tls = { caFile: access.tls.ca, certFile: access.tls.cert, keyFile: access.tls.key };
  if (credential) settings.inboxPrefix = clusterSubjects(credential.cluster).inbox(credential.identity);
  try {
    return await connect(settings);
  } catch (error) {
    throw busFailure(access, error);
  }
}

/** One line for a failed connection: what was unreachable or refused, with its URL. */
export function busFailure(access: BusAccess, error: unknown): SlicelabError {
  const url = access.servers.join(',');
  const how = access.creds ? `the credentials in ${access.creds}` : access.user !== undefined ? `user "${access.user}"` : access.token !== undefined ? 'the token' : 'no credentials';
  if (error instanceof natsErrors.AuthorizationError || /authorization|authentication/i.test(errorMessage(error))) {
    return new SlicelabError('EACCES', `the bus at ${url} refused ${how} (${errorMessage(error).toLowerCase()})`, { cause: error });
  }
  if (error instanceof natsErrors.TimeoutError) return new SlicelabError('ETIMEDOUT', `no bus answers at ${url} (timed out)`, { cause: error });
  const code = (error as { code?: string }).code ?? /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET/.exec(errorMessage(error))?.[0];
  const reason = code === 'ECONNREFUSED' || /refused/i.test(errorMessage(error)) ? 'connection refused' : errorMessage(error).toLowerCase();
  return new SlicelabError('EUNAVAILABLE', `cannot reach the bus at ${url} (${reason})`, { cause: error });
}
