/**
 * JUnit XML of a run (--junit FILE), for CI systems: one testsuite per design and host, one testcase
 * per check; a failure carries fast-check's report, a check that did not run its budget (n/a,
 * interrupted, not run) is skipped with the reason, and the seed, path and report paths go to
 * system-out. Written by hand: the format is small and escaping is the only subtle part.
 */

import type { CheckResult, StartResults } from './results.js';

/** Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/FFFF). */
// eslint-disable-next-line no-control-regex -- naming the control characters XML allows is the point
const INVALID_XML = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function xmlEscape(s: string): string {
  return s
    .replace(INVALID_XML, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);
const name = (c: CheckResult) => (c.gen !== null ? `${c.check}/${c.gen}` : c.check);
const suiteOf = (c: CheckResult) => `${c.design ?? 'hw model'} on ${c.host}`;

function testcase(c: CheckResult): string {
  const attrs = `classname="${xmlEscape(`vpmu-conformance.${c.design ?? 'hw-model'}.${c.host}`)}" name="${xmlEscape(name(c))}" time="${seconds(c.ms)}"`;
  const body: string[] = [];
  if (c.result === 'failed' && c.failure !== null)
    body.push(
      `      <failure message="${xmlEscape(c.failure.error)}" type="property">${xmlEscape(c.failure.message)}</failure>`,
    );
  else if (c.result === 'n/a') body.push(`      <skipped message="${xmlEscape(`n/a: ${c.reason ?? ''}`)}"/>`);
  else if (c.result === 'interrupted')
    body.push(`      <skipped message="${xmlEscape(`interrupted (${c.programs} programs): ${c.reason ?? ''}`)}"/>`);
  else if (c.result === 'not run') body.push(`      <skipped message="not run: the run was interrupted before it"/>`);
  const out = [
    `programs: ${c.programs}`,
    ...(c.failure !== null ? [`seed: ${c.failure.seed}`, `path: ${c.failure.path ?? ''}`] : []),
    ...(c.report !== null ? [`report: ${c.report.markdown}`, `replay: ${c.report.replay}`] : []),
    ...(c.reportError !== null ? [`no report: ${c.reportError}`] : []),
    ...Object.entries(c.known).map(([k, n]) => `known divergence ${k}: ${n}`),
  ];
  body.push(`      <system-out>${xmlEscape(out.join('\n'))}</system-out>`);
  return `    <testcase ${attrs}>\n${body.join('\n')}\n    </testcase>`;
}

export function junitXml(r: StartResults): string {
  const suites = new Map<string, CheckResult[]>();
  for (const c of r.checks) suites.set(suiteOf(c), [...(suites.get(suiteOf(c)) ?? []), c]);
  const skipped = (cs: readonly CheckResult[]) =>
    cs.filter((c) => c.result !== 'passed' && c.result !== 'failed').length;
  const failures = (cs: readonly CheckResult[]) => cs.filter((c) => c.result === 'failed').length;
  const time = (cs: readonly CheckResult[]) => seconds(cs.reduce((a, c) => a + c.ms, 0));
  const body = [...suites].map(
    ([s, cs]) =>
      `  <testsuite name="${xmlEscape(s)}" tests="${cs.length}" failures="${failures(cs)}" errors="0" skipped="${skipped(cs)}" time="${time(cs)}">\n${cs.map(testcase).join('\n')}\n  </testsuite>`,
  );
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="vpmu-conformance (seed ${r.seed})" tests="${r.checks.length}" failures="${failures(r.checks)}" errors="0" skipped="${skipped(r.checks)}" time="${time(r.checks)}">
${body.join('\n')}
</testsuites>
`;
}
