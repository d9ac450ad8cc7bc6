/**
 * One fast-check seed per test process, printed so any failure can be replayed:
 * FC_SEED=<n> npm test. Names of tests never contain the seed (Stryker looks tests up by name).
 */
import fc from 'fast-check';

const fromEnv = process.env.FC_SEED;
const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : (Date.now() ^ (process.pid << 8)) | 0;
if (!Number.isInteger(seed)) throw new Error(`FC_SEED must be an integer, got '${fromEnv}'`);
const numRuns = process.env.FC_RUNS !== undefined ? Number(process.env.FC_RUNS) : undefined;
fc.configureGlobal({ seed, ...(numRuns !== undefined ? { numRuns } : {}) });
if (process.env.FC_QUIET === undefined) console.log(`[fast-check] seed ${seed} (replay: FC_SEED=${seed} npm test)`);
