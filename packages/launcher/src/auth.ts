/**
 * The cluster's credentials, nats-server's decentralized authentication: an operator that the embedded
 * server trusts, a system account, and one account per cluster whose key signs a user JWT per identity
 * (launcher, admin, each host) carrying that identity's permissions (protocol/permissions.ts). The
 * server needs no reload to admit a new host: `creds export` signs a credential for it, and the server
 * checks the signature chain. Keys live in `<run folder>/auth/` (mode 0700, files 0600) and outlive a
 * run, so credentials handed to other machines keep working across `down` and `up`.
 *
 * Division of labor:
 *   ClusterAuth: keys, the server's trust configuration, signing credentials
 *   nats-server.ts: the server process, given the configuration this writes
 *   protocol/connect.ts: how any process presents a credential
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { credentialTags, permissionsFor, type Identity } from '@slicelab/protocol';

interface Keys {
  operator: string;
  system: string;
  account: string;
}

/** no limit, in the account JWT's terms */
const unlimited = {
  subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true,
  mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1,
};

export class ClusterAuth {
  private constructor(readonly dir: string, readonly cluster: string, private readonly keys: { operator: KeyPair; system: KeyPair; account: KeyPair }) {}

  /** The cluster's keys from `dir`, made on first use. */
  static open(dir: string, cluster: string): ClusterAuth {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const file = join(dir, 'keys.json');
    if (!existsSync(file)) {
      const seed = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());
      const keys: Keys = { operator: seed(createOperator()), system: seed(createAccount()), account: seed(createAccount()) };
      writeSecret(file, `${JSON.stringify(keys, null, 2)}\n`);
    }
    const keys = JSON.parse(readFileSync(file, 'utf8')) as Keys;
    const pair = (seed: string) => fromSeed(new TextEncoder().encode(seed));
    return new ClusterAuth(dir, cluster, { operator: pair(keys.operator), system: pair(keys.system), account: pair(keys.account) });
  }

  /**
   * nats-server's configuration: trust the operator, the cluster's account preloaded (with JetStream),
   * `extra` appended (listen address, TLS, JetStream store). Written 0600; returns its path.
   */
  async writeServerConfig(extra: string): Promise<string> {
    const { operator, system, account } = this.keys;
    const operatorJwt = await encodeOperator('slicelab', operator, { system_account: system.getPublicKey() });
    const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
    const accountJwt = await encodeAccount(this.cluster, account, { limits: unlimited }, { signer: operator });
    const file = join(this.dir, 'nats-server.conf');
    writeSecret(file, [
      `operator: ${operatorJwt}`,
      `system_account: ${system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${system.getPublicKey()}: ${systemJwt}`,
      `  ${account.getPublicKey()}: ${accountJwt}`,
      '}',
      // a client's CONNECT line carries its credential's JWT, and with it every subject it may use: over
      // the default 4 KiB, a host of a cluster with a longer name ("bench-fairness-wfq") could not connect
      'max_control_line: 16KB',
      extra,
      '',
    ].join('\n'));
    return file;
  }

  /** A `.creds` file's text for `who`: a user JWT signed by the cluster's account, with its permissions. */
  async credential(who: Identity): Promise<string> {
    const user = createUser();
    const name = who.role === 'host' ? `${this.cluster}/host/${who.host}` : `${this.cluster}/${who.role}`;
    const jwt = await encodeUser(name, user, this.keys.account, { ...permissionsFor(this.cluster, who), tags: credentialTags(this.cluster, who) });
    return new TextDecoder().decode(fmtCreds(jwt, user));
  }

  /** Writes a credential for `who` to `file` (mode 0600); returns the path. */
  async writeCredential(who: Identity, file: string): Promise<string> {
    writeSecret(file, await this.credential(who));
    return file;
  }
}

function writeSecret(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}
