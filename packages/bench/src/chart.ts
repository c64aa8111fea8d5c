/** Charts as SVG files, rendered headless by vega-lite → vega (no browser, no canvas). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';

export async function writeChart(spec: TopLevelSpec, file: string): Promise<string> {
  // vega is large: load it only when a chart is drawn, not with every command
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, svg);
  return file;
}
