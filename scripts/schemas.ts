/**
 * `npm run schemas`: writes the JSON Schema of each machine-readable output beside the zod schema it
 * is generated from, for tools that do not read TypeScript. A test fails when a file is stale.
 */
import { writeFileSync } from 'node:fs';
import { SCHEMA_FILES } from './schema_files.js';

for (const [path, schema] of Object.entries(SCHEMA_FILES)) {
  writeFileSync(path, `${JSON.stringify(schema(), null, 2)}\n`);
  console.log(`wrote ${path}`);
}
