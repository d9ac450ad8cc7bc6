// Prints vitest's JSON results as the one line CI reads: "N passed, N failed[, N skipped]"
// (CI_EXTRA_FAILED adds failures of checks CI runs beside vitest).
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'reports/out/vitest.json';
let r;
try {
  r = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`ci-summary: no vitest results at ${file} (${e.code ?? e.message})`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
// A file that fails before its tests run has no failed test: count it as one failure.
const brokenFiles = (r.testResults ?? []).filter(
  (t) => t.status === 'failed' && (t.assertionResults ?? []).every((a) => a.status !== 'failed'),
).length;
// Each failed test by name, with the fast-check seed and path that replay it, so a CI log says what to run again.
for (const f of r.testResults ?? []) {
  const file = String(f.name ?? '').replace(/^.*?\/test\//, 'test/');
  for (const a of f.assertionResults ?? []) {
    if (a.status !== 'failed') continue;
    const m = /seed: (-?\d+), path: "([^"]*)"/.exec((a.failureMessages ?? []).join('\n'));
    console.log(`failed: ${file} > ${a.fullName}${m ? ` (FC_SEED=${m[1]}, path ${m[2]})` : ''}`);
  }
  if (f.status === 'failed' && (f.assertionResults ?? []).every((a) => a.status !== 'failed'))
    console.log(`failed: ${file} (${String(f.message ?? 'no tests ran').split('\n')[0]})`);
}
// Checks CI runs beside vitest (the reproducers' build) report their failures here.
const extra = Number(process.env.CI_EXTRA_FAILED ?? 0) || 0;
const failed = r.numFailedTests + Math.max(r.numRuntimeErrorTestSuites ?? 0, brokenFiles) + extra;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${r.numPassedTests} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || r.numPassedTests === 0 ? 1 : 0);
