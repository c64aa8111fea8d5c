// Writes packages/cli/oclif.manifest.json, so the CLI loads only the command it runs instead of every
// command module at each start (what `oclif manifest` does, without that tool's dependencies).
import { rmSync, writeFileSync } from 'node:fs';
import { Config } from '@oclif/core';

const root = new URL('../packages/cli/', import.meta.url).pathname;
const file = `${root}oclif.manifest.json`;
// without a manifest file, oclif builds the manifest by loading every command: that is the one to keep
rmSync(file, { force: true });
const config = await Config.load({ root, devPlugins: false, userPlugins: false });
const manifest = config.plugins.get(config.pjson.name).manifest;
writeFileSync(file, `${JSON.stringify({ ...manifest, version: config.pjson.version })}\n`);
