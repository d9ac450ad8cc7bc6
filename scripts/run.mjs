// `npm start`, `npm run replay`, `npm run bugs`, `npm run compare`, `npm run bench`: rebuild dist/ if a source is newer,
// then run the built command line in this process (one process, so signals reach the command itself).
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from './build.mjs';

await ensureBuilt();
// `node scripts/run.mjs bench ...` is `npm run bench`: the bench's own entry, built like the command line.
if (process.argv[2] === 'bench') {
  // As if run as `node dist/bench.js ...`: the bench starts itself again by argv[1] for each end-to-end figure.
  process.argv.splice(1, 2, fileURLToPath(import.meta.resolve('../dist/bench.js')));
  await import('../dist/bench.js');
} else await import('../dist/cli.js');
