// Writes cluster.schema.json from the same validator `slicelab up` uses (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { clusterConfigJsonSchema } from '@slicelab/launcher';

writeFileSync(new URL('../cluster.schema.json', import.meta.url), `${JSON.stringify(clusterConfigJsonSchema(), null, 2)}\n`);
