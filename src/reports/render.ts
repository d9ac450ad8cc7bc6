/**
 * The three files of a report: report.md (for people, in the house style of reports/0001),
 * regression.test.ts (the plain program as a vitest file) and the per-step trace both of them
 * and `npm run replay` print.
 */

import { GuestRun, type WorldCommand } from '../scenarios/commands.js';
import { guestToCode } from '../scenarios/serialize.js';
import type { GuestConfig, Observation } from '../scenarios/world.js';
import type { Report } from './build.js';
import type { Replay } from './replay.js';

const hex = (v: number | bigint) => `0x${v.toString(16)}`;
/** A single-quoted TypeScript string literal, for generated code. */
const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A command short enough for a trace row: a run shows its unit count, not its units. */
export function shortCommand(c: WorldCommand): string {
  return c instanceof GuestRun ? `new GuestRun(${c.vcpu}, [${c.units.length} unit${c.units.length === 1 ? '' : 's'}])` : String(c);
}

export const FIRST_DIVERGENCE = '<- first divergence';

/** One row per observation (a command without any, such as Migrate, gets one row of its own). */
export function traceRows(r: Replay): string[][] {
  const rows: string[][] = [];
  for (const s of r.steps) {
    const cmd = shortCommand(s.command);
    if (s.observations.length === 0) rows.push([String(s.index), cmd, '(no guest observation)', '', '', '']);
    s.observations.forEach((o, i) =>
      // A VMM action (migration, save/restore) is recorded with nothing for either side to see.
      rows.push([i === 0 ? String(s.index) : '', i === 0 ? cmd : '', o.what, o.sut || '-', o.oracle || '-', o === r.divergence ? FIRST_DIVERGENCE : '']),
    );
  }
  return rows;
}

export const TRACE_HEAD = ['step', 'command', 'observation', 'guest saw', 'bare metal', ''];

/** The trace as aligned plain text, for the terminal. */
export function traceText(r: Replay): string {
  const rows = [TRACE_HEAD, ...traceRows(r)];
  const widths = TRACE_HEAD.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|');

export function traceMarkdown(r: Replay): string {
  const rows = traceRows(r).map((row) =>
    row.map((cell, c) => (cell === '' ? '' : c === 1 ? `\`${cell}\`` : c === 5 ? `**${cell}**` : mdCell(cell))),
  );
  return [TRACE_HEAD, TRACE_HEAD.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

export function programCode(program: readonly WorldCommand[], indent = '  '): string {
  return program.map((c) => `${indent}${String(c)},`).join('\n');
}

/** The guest in words: CPUID.0AH fields and PERF_CAPABILITIES. */
export function describeGuest(g: GuestConfig): string {
  const { eax, ebx, edx } = g.cpuid.leaf0a;
  const version = eax & 0xff;
  const counters = (n: number, what: string, width: number) =>
    n === 0 ? `no ${what} counters` : `${n} ${what} counter${n === 1 ? '' : 's'} × ${width} bits`;
  const parts = [
    `CPUID.0AH v${version}, ${counters((eax >>> 8) & 0xff, 'GP', (eax >>> 16) & 0xff)}`,
    counters(version > 1 ? edx & 0x1f : 0, 'fixed', (edx >>> 5) & 0xff),
  ];
  if (ebx !== 0) parts.push(`EBX (unavailable events) ${hex(ebx)}`);
  if (!g.cpuid.pdcm) parts.push('no PDCM');
  else {
    const caps = g.perfCapabilities;
    const named = [(caps & (1n << 13n)) !== 0n ? 'FW_WRITES' : null, (caps & 0x3fn) !== 0n ? `LBR_FMT ${caps & 0x3fn}` : null].filter((x) => x !== null);
    parts.push(`PERF_CAPABILITIES ${hex(caps)}${named.length > 0 ? ` (${named.join(', ')})` : ''}`);
  }
  return parts.join('; ');
}

function firstDivergenceText(o: Observation, design: string, rule: string): string {
  return [
    `Step ${o.step}, vCPU ${o.vcpu}: \`${o.what}\``,
    '',
    '| | result |',
    '|---|---|',
    `| guest under \`${design}\` | ${mdCell(o.sut)} |`,
    `| bare metal (reference model) | ${mdCell(o.oracle)} |`,
    '',
    `Rule: ${rule}.`,
  ].join('\n');
}

export function reportMarkdown(r: Report): string {
  const f = r.file;
  const s = f.search;
  const n = f.program.length;
  const design = r.design;
  return `# ${f.title}

- **Property:** ${f.property.id}: ${f.property.rule}.
- **Design:** \`${design.id}\`, ${design.title} (\`${design.source}\`${design.fixedBy !== undefined ? `; fixed upstream by ${design.fixedBy}` : ''}).
- **Host / guest:** \`${f.host}\` (BUILTIN_PROFILES), ${f.cpus} pCPUs; guest ${describeGuest(r.guest)}.
- **Found:** ${f.found} by \`npm start\`; fast-check ${f.versions.fastCheck}, seed ${s.seed}, path ${JSON.stringify(s.path)}, replayPath ${JSON.stringify(s.replayPath)}; failed after ${s.numRuns} program${s.numRuns === 1 ? '' : 's'}, shrunk ${s.numShrinks}× by fast-check to ${s.shrunkCommands} command${s.shrunkCommands === 1 ? '' : 's'}, post-shrunk to ${n}.
- **Signature:** \`${f.signature}\` (one report per signature: design, observation kind, MSR/ECX, which side #GP'd or how the PMIs differ).

## Minimal program (${n} command${n === 1 ? '' : 's'})

\`\`\`ts
const guest: GuestConfig = ${guestToCode(r.guest)};
fc.modelRun(setup, [
${programCode(r.program)}
]);
\`\`\`

## First divergent observation

${firstDivergenceText(r.replay.divergence, design.id, f.divergence.rule)}

## Trace

Every observation of the replayed program; the program stops at the first divergence.

${traceMarkdown(r.replay)}

## Replay

\`\`\`sh
${f.replay}
npm start -- --seed ${s.seed} --only ${f.property.id} --profile ${f.host} --design ${design.id}   # the search itself, same generators only
\`\`\`

To keep it as a regression that runs before the random search, copy \`regression.test.ts\` from this
folder to \`test/regressions/${f.id}.test.ts\`.

## Versions

fast-check ${f.versions.fastCheck}, Node ${f.versions.node}, vpmu-conformance ${f.versions.package}, generators ${f.versions.generators}.

## fast-check's report

\`\`\`
${r.fastCheckMessage.trimEnd()}
\`\`\`
`;
}

/** Fields of the divergent observation a regression pins (not the message: its wording may change). */
function observationMatcher(o: Observation): string {
  const target = o.target === null ? 'null' : hex(o.target);
  return `{ kind: ${q(o.kind)}, target: ${target}, sut: ${q(o.sut)}, oracle: ${q(o.oracle)} }`;
}

const COMMAND_CLASSES = ['GuestRdmsr', 'GuestRdpmc', 'GuestRun', 'GuestWrmsr', 'Migrate', 'SaveRestore'];

export function regressionTest(r: Report): string {
  const f = r.file;
  const s = f.search;
  const o = r.replay.divergence;
  const used = COMMAND_CLASSES.filter((c) => r.program.some((p) => String(p).startsWith(`new ${c}(`)));
  return `/**
 * Regression: ${f.title}
 * Report ${f.id}, found ${f.found} (fast-check ${f.versions.fastCheck}, seed ${s.seed}, path ${JSON.stringify(s.path)},
 * replayPath ${JSON.stringify(s.replayPath)}); post-shrunk to ${f.program.length} command${f.program.length === 1 ? '' : 's'}.
 * A plain program: it replays without the generators. To commit it, copy this file to
 * test/regressions/${f.id}.test.ts (its imports are relative to that folder).
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence } from '../../src/properties/designs.js';
import { ${used.join(', ')} } from '../../src/scenarios/commands.js';
import type { GuestConfig } from '../../src/scenarios/world.js';

const guest: GuestConfig = ${guestToCode(r.guest)};
const program = [
${programCode(r.program)}
];

describe(${q(`${f.id}: ${f.title}`)}, () => {
  it(${q(`${f.design} diverges: ${o.what}: guest saw ${o.sut}, bare metal shows ${o.oracle}`)}, () => {
    expect(firstDivergence(${q(f.host)}, guest, program, ${q(f.design)}, ${f.cpus})).toMatchObject(${observationMatcher(o)});
  });
});
`;
}
