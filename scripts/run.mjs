// `npm start`, `npm run replay`, `npm run bugs`, `npm run compare`: rebuild dist/ if a source is newer,
// then run the built command line in this process (one process, so signals reach the command itself).
import { ensureBuilt } from './build.mjs';

await ensureBuilt();
await import('../dist/cli.js');
