/**
 * The namespaces of a container, as data (the pid namespace lives with the process table in
 * container.ts):
 *   uts   its own hostname
 *   user  a uid_map "inside outside length": root inside is an unprivileged uid outside; ids with no
 *         mapping show as the overflow id 65534
 *   mnt   its own root filesystem, an in-memory tree; nothing outside it is reachable
 */
import { SlicelabError } from '@slicelab/protocol';

export const overflowId = 65534;

export interface IdMapping {
  inside: number;
  outside: number;
  length: number;
}

export class UserNamespace {
  constructor(readonly uidMap: readonly IdMapping[]) {}

  /** Parses /proc/PID/uid_map text: lines of "inside outside length". */
  static parse(text: string): UserNamespace {
    const mappings = text
      .trim()
      .split('\n')
      .map((line) => {
        const fields = line.trim().split(/\s+/).map(Number);
        if (fields.length !== 3 || fields.some((n) => !Number.isInteger(n) || n < 0) || fields[2] === 0) {
          throw new SlicelabError('EINVAL', `uid_map: "${line.trim()}" is not "inside outside length"`);
        }
        if (fields.some((n) => n > 0xffffffff) || fields[0]! + fields[2]! > 0x1_0000_0000 || fields[1]! + fields[2]! > 0x1_0000_0000) {
          throw new SlicelabError('EINVAL', `uid_map: "${line.trim()}" goes past uid 4294967295`);
        }
        return { inside: fields[0]!, outside: fields[1]!, length: fields[2]! };
      });
    // like the kernel, no two ranges may overlap, inside or outside
    for (const [i, a] of mappings.entries()) {
      for (const b of mappings.slice(i + 1)) {
        const meet = (x: number, y: number) => x < y + b.length && y < x + a.length;
        if (meet(a.inside, b.inside) || meet(a.outside, b.outside)) throw new SlicelabError('EINVAL', 'uid_map: ranges overlap');
      }
    }
    return new UserNamespace(mappings);
  }

  /** The uid outside for a uid inside, or the overflow id when unmapped. */
  toOutside(uid: number): number {
    for (const m of this.uidMap) if (uid >= m.inside && uid < m.inside + m.length) return m.outside + (uid - m.inside);
    return overflowId;
  }

  /** The uid inside for a uid outside, or the overflow id when unmapped. */
  toInside(uid: number): number {
    for (const m of this.uidMap) if (uid >= m.outside && uid < m.outside + m.length) return m.inside + (uid - m.outside);
    return overflowId;
  }

  toString(): string {
    return this.uidMap.map((m) => `${m.inside} ${m.outside} ${m.length}`).join('\n');
  }
}

type Node = { kind: 'dir' } | { kind: 'file'; data: Uint8Array };

/** A root filesystem as data: every path with its node, parents before children. */
export interface RootfsState {
  capacity: number;
  nodes: Array<[string, Node]>;
}

/** what a root filesystem may hold, like a tmpfs's size= (file contents; names are free) */
export const rootfsSize = 16 * 1024 * 1024;

/**
 * A root filesystem: absolute paths inside the container; ".." never climbs above "/". Errors carry the
 * kernel's errno names. Contents count against `capacity`, as a tmpfs's do against its size.
 */
export class Rootfs {
  private readonly nodes = new Map<string, Node>([['/', { kind: 'dir' }]]);
  private used = 0;

  constructor(readonly capacity = rootfsSize) {}

  save(): RootfsState {
    return { capacity: this.capacity, nodes: [...this.nodes].map(([path, node]) => [path, node.kind === 'dir' ? { kind: 'dir' } : { kind: 'file', data: node.data.slice() }]) };
  }

  /** Rebuilds a tree through the same checks as the calls that made it: a bad state is refused, not taken in. */
  static restore(state: RootfsState): Rootfs {
    const fs = new Rootfs(state.capacity);
    const paths = new Set<string>();
    for (const [path, node] of state.nodes) {
      if (Rootfs.normalize(path) !== path || paths.has(path)) throw new SlicelabError('EINVAL', `rootfs: bad path ${JSON.stringify(path)}`);
      paths.add(path);
      if (path === '/') continue;
      if (node.kind === 'dir') fs.mkdir(path);
      else fs.write(path, node.data);
    }
    return fs;
  }

  static image(hostname: string): Rootfs {
    const fs = new Rootfs();
    for (const dir of ['/bin', '/etc', '/home', '/proc', '/tmp', '/var', '/var/log']) fs.mkdir(dir);
    fs.write('/etc/hostname', `${hostname}\n`);
    fs.write('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    return fs;
  }

  static normalize(path: string): string {
    const parts: string[] = [];
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') parts.pop();
      else parts.push(part);
    }
    return `/${parts.join('/')}`;
  }

  /** bytes of file contents held */
  get bytes(): number {
    return this.used;
  }

  mkdir(path: string): void {
    const p = Rootfs.normalize(path);
    this.parentDir(p);
    if (this.nodes.has(p)) throw new SlicelabError('EEXIST', `${p} exists`);
    this.nodes.set(p, { kind: 'dir' });
  }

  write(path: string, data: string | Uint8Array): void {
    const p = Rootfs.normalize(path);
    this.put(p, new Uint8Array(0), bytesOf(data));
  }

  append(path: string, data: string | Uint8Array): void {
    const p = Rootfs.normalize(path);
    const node = this.nodes.get(p);
    this.put(p, node?.kind === 'file' ? node.data : new Uint8Array(0), bytesOf(data));
  }

  read(path: string): Uint8Array {
    const p = Rootfs.normalize(path);
    const node = this.nodes.get(p);
    if (!node) throw new SlicelabError('ENOENT', `${p}: no such file`);
    if (node.kind === 'dir') throw new SlicelabError('EISDIR', `${p} is a directory`);
    return node.data.slice();
  }

  list(path: string): string[] {
    const p = Rootfs.normalize(path);
    const node = this.nodes.get(p);
    if (!node) throw new SlicelabError('ENOENT', `${p}: no such directory`);
    if (node.kind !== 'dir') throw new SlicelabError('ENOTDIR', `${p} is not a directory`);
    return this.children(p).sort();
  }

  /** Removes a file or an empty directory (rm, rmdir). */
  remove(path: string): void {
    const p = Rootfs.normalize(path);
    const node = this.nodes.get(p);
    if (!node) throw new SlicelabError('ENOENT', `${p}: no such file or directory`);
    if (p === '/') throw new SlicelabError('EBUSY', '/ is the root');
    if (node.kind === 'dir' && this.children(p).length > 0) throw new SlicelabError('ENOTEMPTY', `${p} is not empty`);
    if (node.kind === 'file') this.used -= node.data.length;
    this.nodes.delete(p);
  }

  exists(path: string): boolean {
    return this.nodes.has(Rootfs.normalize(path));
  }

  /** Sets file `p` to `head` followed by `tail`, within the capacity. */
  private put(p: string, head: Uint8Array, tail: Uint8Array): void {
    this.parentDir(p);
    const node = this.nodes.get(p);
    if (node?.kind === 'dir') throw new SlicelabError('EISDIR', `${p} is a directory`);
    const old = node?.data.length ?? 0;
    const size = head.length + tail.length;
    if (this.used - old + size > this.capacity) throw new SlicelabError('ENOSPC', `${p}: the rootfs holds at most ${this.capacity} bytes`);
    const data = new Uint8Array(size);
    data.set(head);
    data.set(tail, head.length);
    this.nodes.set(p, { kind: 'file', data });
    this.used += size - old;
  }

  private children(p: string): string[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    return [...this.nodes.keys()].filter((k) => k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map((k) => k.slice(prefix.length));
  }

  private parentDir(p: string): void {
    const parent = p.slice(0, p.lastIndexOf('/')) || '/';
    const node = this.nodes.get(parent);
    if (!node) throw new SlicelabError('ENOENT', `${parent}: no such directory`);
    if (node.kind !== 'dir') throw new SlicelabError('ENOTDIR', `${parent} is not a directory`);
  }
}

/** Text as UTF-8; bytes copied, so that the caller cannot change a file afterwards. */
function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data.slice();
}
