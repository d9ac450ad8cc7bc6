/**
 * The three files of a report: report.md (for people, in the house style of reports/filed/0001),
 * regression.test.ts (the plain program(s) as a vitest file calling the property's own check)
 * and the per-step trace both of them and `npm run replay` print. Each property names its two
 * sides in its own words: the guest and bare metal, the changed and the original host values,
 * the run with and without the insertion, the host with and without the guest.
 */

import * as commands from '../scenarios/commands.js';
import * as vmmCommands from '../scenarios/vmm.js';
import { GuestRun, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { guestToCode } from '../scenarios/serialize.js';
import type { GuestConfig } from '../scenarios/world.js';
import type { Report } from './build.js';
import type { Case, PropertyId, Replay, ReportObservation } from './replay.js';
import { describeReport } from './rules.js';
import { unverifiedDecision } from './decisions.js';
import { affectedGuests } from './affected.js';
import { type Outcome, showOutcome } from '../scenarios/observation.js';

const hex = (v: number | bigint) => `0x${v.toString(16)}`;
/** A single-quoted TypeScript string literal, for generated code. */
const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A command short enough for a trace row: a run shows its unit count, not its units. */
export function shortCommand(c: WorldCommand): string {
  const units = (n: number) => `[${n} unit${n === 1 ? '' : 's'}]`;
  if (c instanceof GuestRun) return `new GuestRun(${c.vcpu}, ${units(c.units.length)})`;
  if (c instanceof HostWork) return `new HostWork(${c.cpu}, ${units(c.units.length)})`;
  return String(c);
}

export const FIRST_DIVERGENCE = '<- first divergence';
export const COUNTS_PART = '<- counts first differ';

/** The two sides a property compares, as trace column heads: [failing side, what it is compared with]. */
export function sideHeads(p: PropertyId): [string, string] {
  switch (p) {
    case 'no-leak':
      return ["host's values changed", 'original values'];
    case 'host-undisturbed':
      return ['with the guest', 'host only'];
    case 'invisible':
      return ['with the insertion', 'without it'];
    default:
      return ['guest saw', 'bare metal'];
  }
}

export function traceHead(p: PropertyId): string[] {
  return ['step', 'command', p === 'host-undisturbed' ? 'host event' : 'observation', ...sideHeads(p), ''];
}

/** The command cell: the baseline's command beside it where it differs, the inserted one marked. */
function commandCell(s: Replay['steps'][number]): string {
  const cmd = shortCommand(s.command);
  if (s.inserted === true) return `${cmd} (inserted)`;
  if (s.baseline === undefined) return cmd;
  const original = shortCommand(s.baseline);
  return `${cmd} (original: ${original === cmd ? 'the same with other values' : original})`;
}

/** One row per observation (a command without any, such as Migrate, gets one row of its own). */
export function traceRows(r: Replay): string[][] {
  const rows: string[][] = [];
  const none = r.property === 'host-undisturbed' ? '(no host event open)' : '(no guest observation)';
  const mark = (o: ReportObservation) => (o === r.divergence ? FIRST_DIVERGENCE : o === r.parted ? COUNTS_PART : '');
  for (const s of r.steps) {
    const cmd = commandCell(s);
    if (s.observations.length === 0) rows.push([String(s.index), cmd, none, '', '', '']);
    s.observations.forEach((o, i) =>
      // A VMM action (migration, save/restore) is recorded with nothing for either side to see.
      rows.push([
        i === 0 ? String(s.index) : '',
        i === 0 ? cmd : '',
        describeReport(o),
        showOutcome(o.sut) || '-',
        showOutcome(o.oracle) || '-',
        mark(o),
      ]),
    );
  }
  return rows;
}

/** The conformance trace's head (the default). */
export const TRACE_HEAD = traceHead('conformance');

/** The trace as aligned plain text, for the terminal. */
export function traceText(r: Replay): string {
  const head = traceHead(r.property);
  const rows = [head, ...traceRows(r)];
  // A loop, not Math.max(...rows): a 200k-command program would overflow the stack with its arguments.
  const widths = head.map((_, c) => rows.reduce((w, row) => Math.max(w, row[c]!.length), 0));
  return rows
    .map((row) =>
      row
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|');

export function traceMarkdown(r: Replay): string {
  const head = traceHead(r.property);
  const rows = traceRows(r).map((row) =>
    row.map((cell, c) => (cell === '' ? '' : c === 1 ? `\`${cell}\`` : c === 5 ? `**${cell}**` : mdCell(cell))),
  );
  return [head, head.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
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
    const named = [
      (caps & (1n << 13n)) !== 0n ? 'FW_WRITES' : null,
      (caps & 0x3fn) !== 0n ? `LBR_FMT ${caps & 0x3fn}` : null,
    ].filter((x) => x !== null);
    parts.push(`PERF_CAPABILITIES ${hex(caps)}${named.length > 0 ? ` (${named.join(', ')})` : ''}`);
  }
  return parts.join('; ');
}

/** The two sides of the first divergence, in the property's words: [failing side, the side it is compared with]. */
function sideLabels(c: Case, design: string): [string, string] {
  switch (c.property) {
    case 'no-leak':
      return ["guest, host's private values changed (`changed`)", "guest, the host's original values (`original`)"];
    case 'host-undisturbed':
      return ['host event, with the guest running', 'host event, same host without the guest (host commands only)'];
    case 'invisible':
      return [`guest with \`${String(c.insertion.command)}\` before program[${c.insertion.at}]`, 'guest without it'];
    default:
      return [`guest under \`${design}\``, 'bare metal (reference model)'];
  }
}

/** The first divergence in one sentence, as `npm run replay` prints it. */
export function divergenceSentence(p: PropertyId, o: ReportObservation): string {
  const at = `step ${o.step}, vCPU ${o.vcpu}: ${describeReport(o)}`;
  const [sut, oracle] = [showOutcome(o.sut), showOutcome(o.oracle)];
  switch (p) {
    case 'no-leak':
      return `${at}: with the host's values changed the guest saw ${sut}, with the original ones ${oracle}`;
    case 'invisible':
      return `${at}: with the insertion the guest saw ${sut}, without it ${oracle}`;
    case 'host-undisturbed': {
      const ev =
        o.event === undefined ? 'a host event' : `host event ${o.event.index} on pCPU ${o.event.cpu} (${o.event.perf})`;
      return `${ev} counted ${sut} with the guest running, ${oracle} on the same host without it (the counts first differ after step ${o.step})`;
    }
    default:
      return `${at}: guest saw ${sut}, bare metal shows ${oracle}`;
  }
}

function firstDivergenceText(r: Report): string {
  const o = r.replay.divergence;
  const [failing, baseline] = sideLabels(r.kase, r.design.id);
  const where =
    o.kind === 'host-event'
      ? `After the whole program (the counts first differ after step ${o.step}): \`${describeReport(o)}\``
      : `Step ${o.step}, vCPU ${o.vcpu}: \`${describeReport(o)}\``;
  return [
    where,
    '',
    '| | result |',
    '|---|---|',
    `| ${failing} | ${mdCell(showOutcome(o.sut))} |`,
    `| ${baseline} | ${mdCell(showOutcome(o.oracle))} |`,
    '',
    ...(r.kase.property === 'conformance' || r.kase.property === 'lbr-freeze'
      ? []
      : [`In words: ${divergenceSentence(r.kase.property, o)}.`, '']),
    `Rule: ${r.file.divergence.rule}.`,
  ].join('\n');
}

/** What the property compares, for the header. */
function comparedText(c: Case, design: string): string {
  switch (c.property) {
    case 'no-leak':
      return `the guest's observations under \`${design}\` in two runs that differ only in host-private values: \`changed\` (the failing program) against \`original\` (its baseline), command for command`;
    case 'host-undisturbed':
      return `the host's perf event counts with the guest running the program, against the same host running only the program's host commands (\`HostOpen\`, \`HostWork\`), no guest`;
    case 'invisible':
      return `the guest's observations under \`${design}\` with \`${String(c.insertion.command)}\` inserted before program[${c.insertion.at}] (command ${c.insertion.at} counting from 0, as the property says), against the plain program`;
    default:
      return `the guest's observations under \`${design}\` against bare metal (a reference-model CPU of the guest's CPUID), one by one`;
  }
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** How the design and host are built in generated code: by id and by BUILTIN_PROFILES name. */
function runCode(r: Report, expectations: 'expectations' | 'invisibility' | null): string {
  const f = r.file;
  return [
    `const design = designById(${q(f.design)});`,
    `const run = { host: BUILTIN_PROFILES[${q(f.host)}]!, design: design.factory, hostKernel: design.hostKernel${expectations === null ? '' : `, expectations: design.${expectations}`} };`,
  ].join('\n');
}

/**
 * The world the conformance and lbr-freeze checks run a program in, as code: the design beside bare metal, with the
 * declared divergences bare metal takes on (W6), as properties/conformance.ts runProgram builds it.
 */
function setupCode(r: Report): string {
  const f = r.file;
  return [
    `const design = designById(${q(f.design)});`,
    `const host = BUILTIN_PROFILES[${q(f.host)}]!;`,
    'const setup = () => ({',
    '  model: {},',
    `  real: new World({ host, cpus: ${f.cpus}, guests: [guest], design: design.factory, hostKernel: design.hostKernel, adopt: adoptionOf(design.expectations, host) }),`,
    '});',
  ].join('\n');
}

/** The imports the pasted case needs, relative to test/regressions/ as in regression.test.ts. */
function caseImports(r: Report, body: string): string {
  const c = r.kase;
  const modelRun = c.property === 'conformance' || c.property === 'lbr-freeze';
  const check: Partial<Record<PropertyId, string>> = {
    'no-leak': "import { checkNoninterference } from '../../properties/noninterference.js';",
    'host-undisturbed': "import { checkHostUndisturbed } from '../../properties/host_undisturbed.js';",
    invisible: "import { checkInvisible } from '../../properties/invisible.js';",
  };
  return [
    ...(modelRun ? ["import fc from 'fast-check';"] : []),
    "import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';",
    ...(body.includes('attr({') ? ["import { attr } from '../../model/host/types.js';"] : []),
    "import { designById } from '../../designs/registry.js';",
    ...(modelRun ? ["import { adoptionOf } from '../../properties/expectations/types.js';"] : []),
    ...(check[c.property] !== undefined ? [check[c.property]!] : []),
    commandImports(body, []),
    modelRun
      ? "import { type GuestConfig, World } from '../../scenarios/world.js';"
      : "import type { GuestConfig } from '../../scenarios/world.js';",
  ].join('\n');
}

/** The minimal case as pasteable code, imports included: the guest, the program(s) and the check that fails on them. */
function caseCode(r: Report): string {
  const body = caseBody(r);
  return `${caseImports(r, body)}\n\n${body}`;
}

function caseBody(r: Report): string {
  const c = r.kase;
  const guest = `const guest: GuestConfig = ${guestToCode(r.guest)};`;
  switch (c.property) {
    case 'conformance':
    case 'lbr-freeze':
      return `${guest}\n${setupCode(r)}\n// Throws Divergence at the first divergent observation.\nfc.modelRun(setup, [\n${programCode(c.program)}\n]);`;
    case 'no-leak': {
      const differ = c.program.flatMap((x, i) => (String(x) === String(c.baseline[i]) ? [] : [i + 1]));
      return [
        guest,
        "// The host's original values.",
        `const original = [\n${programCode(c.baseline)}\n];`,
        `// The same program with host-private values changed (command${differ.length === 1 ? '' : 's'} ${differ.join(', ') || 'none'}).`,
        `const changed = [\n${programCode(c.program)}\n];`,
        runCode(r, null),
        'checkNoninterference(run, guest, original, changed); // throws Divergence',
      ].join('\n');
    }
    case 'host-undisturbed':
      return [
        guest,
        `const program = [\n${programCode(c.program)}\n];`,
        runCode(r, null),
        '// Compared with program.filter((c) => c instanceof HostOpen || c instanceof HostWork) on the same host without the guest.',
        'checkHostUndisturbed(run, guest, program); // throws HostDisturbed',
      ].join('\n');
    case 'invisible':
      return [
        guest,
        `const program = [\n${programCode(c.program)}\n];`,
        runCode(r, 'invisibility'),
        `checkInvisible(run, guest, program, ${c.insertion.at}, ${String(c.insertion.command)}); // throws Divergence`,
      ].join('\n');
  }
}

function programHeading(c: Case): string {
  const n = c.program.length;
  switch (c.property) {
    case 'no-leak':
      return `Minimal programs (${count(n, 'command pair')})`;
    case 'invisible':
      return `Minimal program (${count(n, 'command')}, and the inserted one)`;
    default:
      return `Minimal program (${count(n, 'command')})`;
  }
}

/** The report's reproducers (reports/emit): file names beside report.md and what the model predicts. */
export type ReproducerLinks =
  { readonly repro: string; readonly selftest: string; readonly prediction: string } | { readonly error: string };

function reproducersSection(l: ReproducerLinks | undefined): string {
  if (l === undefined) return '';
  if ('error' in l) return `\n## Reproducers\n\nNone: ${l.error}\n`;
  return `
## Reproducers (not run on hardware yet)

- [\`${l.repro}\`](${l.repro}): standalone, raw \`/dev/kvm\` ioctls; \`gcc -O2 -Wall -o repro ${l.repro} && ./repro\`. Exit 0: the divergence is absent; 1: present (the first divergent observation is printed); 2: the reproducer itself failed; 77: the host lacks what the program needs.
- [\`${l.selftest}\`](${l.selftest}): the same program as a KVM selftest (\`tools/testing/selftests/kvm/x86/\`, \`x86_64/\` before 6.14); its header says how to build it in a kernel tree.

Both were generated where there is no \`/dev/kvm\` with an Intel PMU: ${l.prediction}. Until someone runs them on an Intel host and reports back what they print, that is a prediction, not a result (README, "Reproducers").
`;
}

/** The upstream tree the design models. */
function baseLine(f: Report['file']): string {
  return f.base === undefined ? '' : `- **Base:** ${f.base}.\n`;
}

/** The unverified decisions the verdict can rest on, each with the choice the model made. */
function restsLine(f: Report['file']): string {
  if (f.rests === undefined) return '';
  if (f.rests.length === 0)
    return '- **Rests on unverified decisions:** none (the program applied none before it diverged).\n';
  const items = f.rests.map((id) => {
    const d = unverifiedDecision(id);
    return d === undefined ? id : `${id} (${d.question} Choice: ${d.choice})`;
  });
  return `- **Rests on unverified decisions:** ${items.join('; ')}.\n`;
}

/** The Fixes: tag a patch for the finding would carry, where the port knows it. */
function fixesLine(r: Report): string {
  const d = r.design;
  const fixed = d.fixedBy !== undefined ? `; upstream fixed it in ${d.fixedBy}` : '';
  if (d.fixes !== undefined)
    return `- **Fixes:** ${d.fixes.commit} ("${d.fixes.subject}"), the change that introduced it${fixed}.\n`;
  return `- **Fixes:** not known to the port${fixed === '' ? '' : ` (${fixed.slice(2)})`}.\n`;
}

/** Which real guest software issues the program's sequence. */
function affectedLine(r: Report): string {
  return `- **Affected guests:** ${affectedGuests(r.program, r.guest).join('; ')}.\n`;
}

/** A guest beyond what KVM reports: said in the header, as the title says it. */
function unsupportedLine(f: Report['file']): string {
  if (f.unsupported === undefined || f.unsupported.length === 0) return '';
  return `- **Configuration:** unsupported. The guest goes beyond what the design reports on this host: ${f.unsupported.join('; ')}. A VMM that keeps to KVM_GET_SUPPORTED_CPUID and the feature MSRs cannot create it, so this is not filed as a bug.\n`;
}

export function reportMarkdown(r: Report, reproducers?: ReproducerLinks): string {
  const f = r.file;
  const s = f.search;
  const n = f.program.length;
  const design = r.design;
  const unit = r.kase.property === 'no-leak' ? 'command pair' : 'command';
  return `# ${f.title}

- **Property:** ${f.property.id}: ${f.property.rule}.
- **Design:** \`${design.id}\`, ${design.title} (\`${design.source}\`${design.fixedBy !== undefined ? `; fixed upstream by ${design.fixedBy}` : ''}).
- **Host / guest:** \`${f.host}\` (BUILTIN_PROFILES), ${f.cpus} pCPUs; guest ${describeGuest(r.guest)}.
${baseLine(f)}${fixesLine(r)}${affectedLine(r)}${unsupportedLine(f)}${restsLine(f)}- **Compared:** ${comparedText(r.kase, design.id)}.
- **Found:** ${f.found} by \`npm start\`; fast-check ${f.versions.fastCheck}, seed ${s.seed}, path ${JSON.stringify(s.path)}, replayPath ${JSON.stringify(s.replayPath)}; failed after ${count(s.numRuns, 'program')}, shrunk ${s.numShrinks}× by fast-check to ${count(s.shrunkCommands, unit)}, post-shrunk to ${n}.
- **Signature:** \`${f.signature}\` (one report per signature: ${signatureWords(r.kase.property)}).

## ${programHeading(r.kase)}

\`\`\`ts
${caseCode(r)}
\`\`\`

## First divergent observation

${firstDivergenceText(r)}

## Trace

${traceIntro(r.kase.property)}

${traceMarkdown(r.replay)}

## Replay

\`\`\`sh
${f.replay}
npm start -- --seed ${s.seed} --only ${f.property.id} --profile ${f.host} --design ${design.id}   # the search itself, same generators only
\`\`\`

To keep it as a regression that runs before the random search, copy \`regression.test.ts\` from this
folder to \`test/regressions/${regressionFileName(f.id)}\`.
${reproducersSection(reproducers)}
## Versions

fast-check ${f.versions.fastCheck}, Node ${f.versions.node}, vpmu-conformance ${f.versions.package}, generators ${f.versions.generators}.

## fast-check's report

\`\`\`
${r.fastCheckMessage.trimEnd()}
\`\`\`
`;
}

function signatureWords(p: PropertyId): string {
  switch (p) {
    case 'host-undisturbed':
      return 'property, design, whether the host event counted more or less with the guest';
    case 'invisible':
      return "property, design, observation kind, MSR/ECX, which side #GP'd or how the PMIs differ, the inserted command's kind";
    case 'conformance':
      return "design, observation kind, MSR/ECX, which side #GP'd or how the PMIs differ";
    default:
      return "property, design, observation kind, MSR/ECX, which side #GP'd or how the PMIs differ";
  }
}

function traceIntro(p: PropertyId): string {
  switch (p) {
    case 'no-leak':
      return 'Every guest observation of the `changed` program, beside the same observation of `original` (a command is shown with its original where the two differ).';
    case 'host-undisturbed':
      return 'The count of every host event after each step, with the guest and on the same host without it (each prefix replayed in fresh worlds; the last row is what the property judges).';
    case 'invisible':
      return 'Every guest observation of the program with the insertion, beside the same observation of the plain program.';
    default:
      return 'Every observation of the replayed program beside bare metal, the first undeclared divergence marked.';
  }
}

/** An outcome as a toMatchObject pattern: its values, not a #GP's rule (its wording may change). */
export function outcomeCode(x: Outcome): string {
  switch (x.kind) {
    case 'value':
      return `{ kind: 'value', value: ${hex(x.value)}n }`;
    case 'count':
      return `{ kind: 'count', count: ${x.count}n }`;
    case 'pmis':
      return `{ kind: 'pmis', pmis: [${x.pmis.map((p) => `{ afterUnit: ${p.afterUnit}, vector: ${p.vector} }`).join(', ')}] }`;
    case 'xsave': {
      const a = x.area;
      const e = a.entries.map((r) => `{ from: ${hex(r.from)}n, to: ${hex(r.to)}n, info: ${hex(r.info)}n }`);
      return `{ kind: 'xsave', area: { lbrCtl: ${hex(a.lbrCtl)}n, lbrDepth: ${hex(a.lbrDepth)}n, lerFrom: ${hex(a.lerFrom)}n, lerTo: ${hex(a.lerTo)}n, entries: [${e.join(', ')}] } }`;
    }
    default:
      return `{ kind: ${q(x.kind)} }`;
  }
}

/** Fields of the divergent observation a regression pins (not the message: its wording may change). */
function observationMatcher(o: ReportObservation): string {
  const target = o.target === null ? 'null' : hex(o.target);
  return `{ kind: ${q(o.kind)}, target: ${target}, sut: ${outcomeCode(o.sut)}, oracle: ${outcomeCode(o.oracle)} }`;
}

/** The command classes the generated code names (and the Divergence it catches). */
function commandImports(code: string, extra: readonly string[]): string {
  const named = [...new Set([...code.matchAll(/\bnew (\w+)\(/g)].map((m) => m[1]!))];
  const used = named.filter((c) => c in commands);
  const vmm = named.filter((c) => c in vmmCommands);
  return [
    `import { ${[...extra, ...used].sort().join(', ')} } from '../../scenarios/commands.js';`,
    ...(vmm.length > 0 ? [`import { ${vmm.sort().join(', ')} } from '../../scenarios/vmm.js';`] : []),
  ].join('\n');
}

/** The check a non-conformance regression calls, and what it pins. */
function regressionBody(r: Report): { imports: string[]; setup: string; it: string } {
  const c = r.kase;
  const o = r.replay.divergence;
  const base = [
    `import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';`,
    `import { designById } from '../../designs/registry.js';`,
  ];
  const threw =
    'const thrown = (f: () => void): unknown => {\n  try {\n    f();\n  } catch (e) {\n    return e;\n  }\n  return undefined;\n};';
  const divergenceIt = (call: string) =>
    [
      `    const e = thrown(() => ${call});`,
      '    expect(e).toBeInstanceOf(Divergence);',
      `    expect((e as Divergence).observation).toMatchObject(${observationMatcher(o)});`,
    ].join('\n');
  switch (c.property) {
    case 'lbr-freeze':
      return {
        imports: [...base, `import { runProgram } from '../../properties/conformance.js';`],
        setup: `const program = [\n${programCode(c.program)}\n];\n${runCode(r, 'expectations')}\n${threw}`,
        it: divergenceIt('runProgram(run, guest, program)'),
      };
    case 'no-leak':
      return {
        imports: [...base, `import { checkNoninterference } from '../../properties/noninterference.js';`],
        setup: `const original = [\n${programCode(c.baseline)}\n];\nconst changed = [\n${programCode(c.program)}\n];\n${runCode(r, null)}\n${threw}`,
        it: divergenceIt('checkNoninterference(run, guest, original, changed)'),
      };
    case 'invisible':
      return {
        imports: [...base, `import { checkInvisible } from '../../properties/invisible.js';`],
        setup: `const program = [\n${programCode(c.program)}\n];\n${runCode(r, 'invisibility')}\n${threw}`,
        it: divergenceIt(`checkInvisible(run, guest, program, ${c.insertion.at}, ${String(c.insertion.command)})`),
      };
    case 'host-undisturbed':
      return {
        imports: [
          ...base,
          `import { checkHostUndisturbed, HostDisturbed } from '../../properties/host_undisturbed.js';`,
        ],
        setup: `const program = [\n${programCode(c.program)}\n];\n${runCode(r, null)}\n${threw}`,
        it: [
          '    const e = thrown(() => checkHostUndisturbed(run, guest, program));',
          '    expect(e).toBeInstanceOf(HostDisturbed);',
          `    // ${describeReport(o)}: ${showOutcome(o.sut)} with the guest, ${showOutcome(o.oracle)} without it.`,
          `    expect((e as HostDisturbed).message).toMatch(/host event ${o.event?.index ?? 0} .*counted ${showOutcome(o.sut)} with the guest running, ${showOutcome(o.oracle)} /);`,
        ].join('\n'),
      };
    case 'conformance':
      throw new Error('unreachable: conformance regressions use firstDivergence');
  }
}

function itTitle(r: Report): string {
  const o = r.replay.divergence;
  const f = r.file;
  return r.kase.property === 'lbr-freeze' || r.kase.property === 'conformance'
    ? `${f.design} diverges: ${describeReport(o)}: guest saw ${showOutcome(o.sut)}, bare metal shows ${showOutcome(o.oracle)}`
    : `${f.design} fails ${f.property.id}: ${divergenceSentence(r.kase.property, o)}`;
}

/** Where a report's regression is committed: source files are snake_case, report ids kebab-case. */
export function regressionFileName(id: string): string {
  return `${id.replaceAll('-', '_')}.test.ts`;
}

export function regressionTest(r: Report): string {
  const f = r.file;
  const s = f.search;
  const o = r.replay.divergence;
  const n = f.program.length;
  const head = `/**
 * Regression: ${f.title}
 * Report ${f.id}, found ${f.found} (fast-check ${f.versions.fastCheck}, seed ${s.seed}, path ${JSON.stringify(s.path)},
 * replayPath ${JSON.stringify(s.replayPath)}); post-shrunk to ${count(n, r.kase.property === 'no-leak' ? 'command pair' : 'command')}.
 * A plain program: it replays without the generators. To commit it, copy this file to
 * test/regressions/${regressionFileName(f.id)} (its imports are relative to that folder).
 */`;
  const guest = `const guest: GuestConfig = ${guestToCode(r.guest)};`;
  if (r.kase.property === 'conformance') {
    const code = programCode(r.program);
    return `${head}
import { describe, expect, it } from 'vitest';
import { firstDivergence } from '../../designs/registry.js';
${commandImports(code, [])}
import type { GuestConfig } from '../../scenarios/world.js';

${guest}
const program = [
${code}
];

describe(${q(`${f.id}: ${f.title}`)}, () => {
  it(${q(itTitle(r))}, () => {
    expect(firstDivergence(${q(f.host)}, guest, program, ${q(f.design)}, ${f.cpus})).toMatchObject(${observationMatcher(o)});
  });
});
`;
  }
  const b = regressionBody(r);
  const usesAttr = b.setup.includes('attr({');
  const imports = [
    "import { describe, expect, it } from 'vitest';",
    ...(usesAttr ? ["import { attr } from '../../model/host/types.js';"] : []),
    ...b.imports,
    commandImports(`${b.setup}\n${b.it}`, r.kase.property === 'host-undisturbed' ? [] : ['Divergence']),
    "import type { GuestConfig } from '../../scenarios/world.js';",
  ];
  return `${head}
${imports.join('\n')}

${guest}
${b.setup}

describe(${q(`${f.id}: ${f.title}`)}, () => {
  it(${q(itTitle(r))}, () => {
${b.it}
  });
});
`;
}
