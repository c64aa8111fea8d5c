/** The user and mnt/uts namespaces as data: uid_map parsing and mapping, the root filesystem (the net namespace: net/stack.test.ts). */
import test from 'ava';
import { SlicelabError, type ErrorCode } from '@slicelab/protocol';
import { Rootfs, UserNamespace, overflowId } from '../src/namespaces.js';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function errno(fn: () => unknown): ErrorCode {
  try {
    fn();
  } catch (error) {
    if (error instanceof SlicelabError) return error.code;
    throw error;
  }
  throw new Error('expected a SlicelabError');
}

test('uid_map "0 100000 65536": root inside is 100000 outside, and back', (t) => {
  const userns = UserNamespace.parse('0 100000 65536');
  t.deepEqual(userns.uidMap, [{ inside: 0, outside: 100000, length: 65536 }]);
  t.is(userns.toOutside(0), 100000);
  t.is(userns.toOutside(1000), 101000);
  t.is(userns.toOutside(65535), 165535);
  t.is(userns.toInside(100000), 0);
  t.is(userns.toInside(101000), 1000);
  t.is(userns.toInside(165535), 65535);
  t.is(userns.toString(), '0 100000 65536');
});

test('unmapped ids show as the overflow id 65534 both ways', (t) => {
  const userns = UserNamespace.parse('0 100000 65536');
  t.is(overflowId, 65534);
  t.is(userns.toOutside(65536), 65534);
  t.is(userns.toOutside(1_000_000), 65534);
  t.is(userns.toInside(0), 65534, 'host root is nobody inside');
  t.is(userns.toInside(99999), 65534);
  t.is(userns.toInside(165536), 65534);
  // a namespace with no mapping at all maps nothing
  const empty = new UserNamespace([]);
  t.is(empty.toOutside(0), 65534);
  t.is(empty.toInside(0), 65534);
});

test('uid_map with several lines: each range maps on its own, whitespace is tolerated', (t) => {
  const userns = UserNamespace.parse('  0   200000  1000\n1000 300000 10  \n\t2000\t400000\t5\n');
  t.is(userns.uidMap.length, 3);
  t.is(userns.toOutside(999), 200999);
  t.is(userns.toOutside(1000), 300000);
  t.is(userns.toOutside(1009), 300009);
  t.is(userns.toOutside(1010), 65534);
  t.is(userns.toOutside(2004), 400004);
  t.is(userns.toInside(300005), 1005);
  t.is(userns.toInside(400005), 65534);
  t.is(userns.toString(), '0 200000 1000\n1000 300000 10\n2000 400000 5');
  // what toString writes parses back to the same map
  t.deepEqual(UserNamespace.parse(userns.toString()).uidMap, userns.uidMap);
});

test('bad uid_map lines are refused with EINVAL', (t) => {
  for (const bad of ['', '0 100000', '0 100000 65536 1', 'a b c', '0 100000 0', '-1 100000 10', '0 -5 10', '0 1.5 10', '0 100000 65536\n1 2', '0x 1 1']) {
    t.is(errno(() => UserNamespace.parse(bad)), 'EINVAL', JSON.stringify(bad));
  }
});

test('the rootfs image has /etc/hostname with the hostname and the usual directories', (t) => {
  const fs = Rootfs.image('alpha');
  t.is(text(fs.read('/etc/hostname')), 'alpha\n');
  t.true(text(fs.read('/etc/passwd')).startsWith('root:x:0:0:'));
  t.deepEqual(fs.list('/'), ['bin', 'etc', 'home', 'proc', 'tmp', 'var']);
  t.deepEqual(fs.list('/etc'), ['hostname', 'passwd']);
  t.deepEqual(fs.list('/var'), ['log']);
  t.deepEqual(fs.list('/tmp'), []);
  t.true(fs.exists('/var/log'));
});

test('paths normalise, and ".." cannot climb above "/"', (t) => {
  t.is(Rootfs.normalize('/'), '/');
  t.is(Rootfs.normalize(''), '/');
  t.is(Rootfs.normalize('etc//hostname'), '/etc/hostname');
  t.is(Rootfs.normalize('/etc/./hostname/'), '/etc/hostname');
  t.is(Rootfs.normalize('/a/b/../c'), '/a/c');
  t.is(Rootfs.normalize('/..'), '/');
  t.is(Rootfs.normalize('/../../../etc/hostname'), '/etc/hostname');
  t.is(Rootfs.normalize('../../x/../../y'), '/y');
  const fs = Rootfs.image('beta');
  t.is(text(fs.read('/../../etc/../etc/hostname')), 'beta\n');
  t.is(text(fs.read('tmp/../../etc/hostname')), 'beta\n');
  fs.write('/../../../tmp/escape', 'x');
  t.true(fs.exists('/tmp/escape'));
  t.deepEqual(fs.list('/../..'), fs.list('/'));
});

test('two root filesystems are independent', (t) => {
  const a = Rootfs.image('a');
  const b = Rootfs.image('b');
  a.write('/tmp/file', 'in a');
  a.mkdir('/home/alice');
  t.false(b.exists('/tmp/file'));
  t.false(b.exists('/home/alice'));
  t.is(text(b.read('/etc/hostname')), 'b\n');
  b.write('/etc/hostname', 'renamed\n');
  t.is(text(a.read('/etc/hostname')), 'a\n');
  t.deepEqual(a.list('/home'), ['alice']);
  t.deepEqual(b.list('/home'), []);
});

test('files hold copies: neither the writer nor a reader can change them afterwards', (t) => {
  const fs = new Rootfs();
  const data = new Uint8Array([1, 2, 3]);
  fs.write('/blob', data);
  data[0] = 9;
  const read = fs.read('/blob');
  t.deepEqual([...read], [1, 2, 3]);
  read[1] = 9;
  t.deepEqual([...fs.read('/blob')], [1, 2, 3]);
  fs.write('/blob', 'again');
  t.is(text(fs.read('/blob')), 'again');
});

test('append adds to a file or makes it; remove takes files and empty directories only', (t) => {
  const fs = Rootfs.image('delta');
  fs.append('/tmp/log', 'one\n');
  fs.append('/tmp/log', 'two\n');
  t.is(text(fs.read('/tmp/log')), 'one\ntwo\n');
  fs.mkdir('/tmp/d');
  fs.write('/tmp/d/f', 'x');
  t.is(errno(() => fs.remove('/tmp/d')), 'ENOTEMPTY');
  t.is(errno(() => fs.remove('/')), 'EBUSY');
  t.is(errno(() => fs.remove('/tmp/nothing')), 'ENOENT');
  fs.remove('/tmp/d/f');
  fs.remove('/tmp/d');
  fs.remove('/tmp/log');
  t.deepEqual(fs.list('/tmp'), []);
});

test('a rootfs holds at most its capacity; a refused write leaves the file as it was', (t) => {
  const fs = new Rootfs(10);
  fs.write('/a', '12345');
  fs.append('/a', '678');
  t.is(fs.bytes, 8);
  t.is(errno(() => fs.append('/a', '901')), 'ENOSPC');
  t.is(errno(() => fs.write('/b', '901')), 'ENOSPC');
  t.is(text(fs.read('/a')), '12345678');
  t.false(fs.exists('/b'));
  // rewriting a file frees what it held first
  fs.write('/a', '0123456789');
  t.is(fs.bytes, 10);
  fs.remove('/a');
  t.is(fs.bytes, 0);
  fs.write('/b', '0123456789');
});

test('rootfs errors: missing parents and files, directories where files are expected', (t) => {
  const fs = Rootfs.image('gamma');
  t.is(errno(() => fs.write('/nowhere/file', 'x')), 'ENOENT');
  t.is(errno(() => fs.mkdir('/a/b')), 'ENOENT');
  t.is(errno(() => fs.read('/etc/shadow')), 'ENOENT');
  t.is(errno(() => fs.list('/nowhere')), 'ENOENT');
  t.is(errno(() => fs.list('/etc/hostname')), 'ENOTDIR');
  // a file is not a directory to create things in
  t.is(errno(() => fs.write('/etc/hostname/x', 'x')), 'ENOTDIR');
  t.is(errno(() => fs.mkdir('/etc/hostname/x')), 'ENOTDIR');
  t.is(errno(() => fs.mkdir('/etc')), 'EEXIST');
  t.is(errno(() => fs.mkdir('/etc/hostname')), 'EEXIST');
  t.is(errno(() => fs.mkdir('/')), 'EEXIST');
  t.is(errno(() => fs.read('/etc')), 'EISDIR');
  t.is(errno(() => fs.write('/etc', 'x')), 'EISDIR');
  t.is(errno(() => fs.write('/', 'x')), 'EISDIR');
  t.is(errno(() => fs.append('/etc', 'x')), 'EISDIR');
  // nothing of the refused operations was left behind
  t.false(fs.exists('/nowhere'));
  t.false(fs.exists('/a'));
  t.deepEqual(fs.list('/etc'), ['hostname', 'passwd']);
  // an empty rootfs holds only "/"
  const empty = new Rootfs();
  t.deepEqual(empty.list('/'), []);
  t.true(empty.exists('/'));
  empty.mkdir('/x');
  empty.mkdir('/x/y');
  empty.write('/x/y/z', '');
  t.deepEqual(empty.list('/x'), ['y']);
  t.deepEqual(empty.list('/x/y'), ['z']);
  t.is(empty.read('/x/y/z').length, 0);
});

test('uid_map: overlapping ranges, inside or outside, are refused with EINVAL', (t) => {
  for (const text of ['0 100000 10\n5 200000 10', '0 100000 10\n10 100005 10']) t.is(errno(() => UserNamespace.parse(text)), 'EINVAL');
  t.is(errno(() => UserNamespace.parse('0 4294967295 2')), 'EINVAL');
});
