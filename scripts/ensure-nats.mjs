// Makes sure `nats-server` is installed: where it is missing and we are root with apt-get, installs the
// Debian package; otherwise stops with one line saying exactly what to run.
// `--soft` (npm install's postinstall) reports but never fails the install.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const soft = process.argv.includes('--soft');

function found() {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  for (const dir of dirs) {
    try {
      accessSync(join(dir, 'nats-server'), constants.X_OK);
      return join(dir, 'nats-server');
    } catch {
      // keep looking
    }
  }
  return undefined;
}

function apt(args) {
  execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

if (!found()) {
  const canInstall = process.getuid?.() === 0 && (() => { try { execFileSync('apt-get', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
  if (canInstall) {
    console.error('slicelab: nats-server is missing; installing the Debian package nats-server…');
    try {
      try {
        apt(['install', '-y', '--no-install-recommends', 'nats-server']);
      } catch {
        apt(['update']);
        apt(['install', '-y', '--no-install-recommends', 'nats-server']);
      }
    } catch {
      // reported below
    }
  }
  if (!found()) {
    console.error('slicelab: nats-server is not installed; run as root: apt-get update && apt-get install -y nats-server');
    process.exit(soft ? 0 : 1);
  }
  console.error(`slicelab: installed ${found()}`);
}
