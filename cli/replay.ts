/**
 * `npm run replay -- <report.json>`: rebuilds the world(s) a report describes (design by id, host
 * by BUILTIN_PROFILES name, the guest configuration), makes the report's property's comparison on
 * its plain program(s) (against bare metal, the baseline program, the program without the
 * insertion, or the host without the guest), prints every observation with the first divergence
 * marked, and says whether the finding still stands.
 *
 * Exit status: 1 if the program still fails (diverges, and not as a declared known divergence),
 * 0 if it no longer does, 2 if the report cannot be replayed (no such file, not a report, an
 * unknown design or host): one line on stderr, no stack trace.
 *
 * `--emit c|selftest|both` writes the report's reproducers beside it instead (reports/emit): the
 * standalone C and the KVM selftest; exit 0 when written.
 */

import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { Profile } from '../model/hw/profile.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { DESIGNS, UnknownDesignError } from '../designs/registry.js';
import type { Design } from '../properties/design.js';
import { parseReport, REPORT_MAX_BYTES, ReportFormatError } from '../reports/file.js';
import { describeGuest, divergenceSentence, traceText } from '../reports/render.js';
import { fails, replay } from '../reports/replay.js';
import { caseRule } from '../reports/rules.js';
import { caseSignature } from '../reports/signature.js';
import { SetupError } from '../scenarios/world.js';
import type { EmitKind } from '../reports/emit/files.js';
import { EXIT, EXIT_HELP, guard } from './exit.js';
import { plural } from './output.js';

/** A replay that cannot start: the message is the whole story. */
class ReplayInputError extends Error {
  override readonly name = 'ReplayInputError';
}

const INPUT_ERRORS = [ReplayInputError, ReportFormatError, UnknownDesignError];

function hostByName(name: string): Profile {
  const p = Object.hasOwn(BUILTIN_PROFILES, name) ? BUILTIN_PROFILES[name] : undefined;
  if (p === undefined)
    throw new ReplayInputError(`unknown host profile '${name}' (known: ${Object.keys(BUILTIN_PROFILES).join(', ')})`);
  return p;
}

function readText(path: string): string {
  try {
    // Checked before reading: a file of gigabytes is not a report, and reading it would exhaust memory.
    const size = statSync(path).size;
    if (size > REPORT_MAX_BYTES)
      throw new ReplayInputError(
        `${path} is ${(size / 2 ** 20).toFixed(0)} MB; a report.json is at most ${REPORT_MAX_BYTES / 2 ** 20} MB`,
      );
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof ReplayInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ReplayInputError(
      `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`,
    );
  }
}

function designIn(designs: readonly Design[], id: string): Design {
  const d = designs.find((x) => x.id === id);
  if (d === undefined)
    throw new UnknownDesignError(`unknown design '${id}' (known: ${designs.map((x) => x.id).join(', ')})`);
  return d;
}

/** Writes the report's reproducer(s) beside it instead of replaying; returns the exit status. */
async function emit(
  path: string,
  arg: string,
  kind: string,
  designOverride: string | undefined,
  designs: readonly Design[],
): Promise<number> {
  const report = parseReport(readText(path));
  const design = designIn(designs, designOverride ?? report.file.design);
  const host = hostByName(report.file.host);
  // Loaded only here: a plain replay starts without the emitters.
  const { emitFiles, predictionLine, writeEmitted } = await import('../reports/emit/files.js');
  const { findingOfReport, reproducerPaths } = await import('../reports/emit/finding.js');
  const f = findingOfReport(report, design, host, { regenerate: `npm run replay -- ${arg} --emit ${kind}` });
  const e = emitFiles(f, reproducerPaths(path, report.file.id));
  for (const p of writeEmitted(e, kind === 'both' ? ['c', 'selftest'] : [kind as EmitKind])) console.log(`wrote ${p}`);
  console.log(`${predictionLine(e.emission)}; not run on hardware yet`);
  return EXIT.passed;
}

/** Replays the report at `arg`; returns the exit status. */
function run(
  arg: string,
  designOverride: string | undefined,
  designs: readonly Design[],
  emitKind?: string,
): number | Promise<number> {
  // npm runs scripts from the package root; a relative path means where the user typed it.
  const path = resolve(process.env.INIT_CWD ?? process.cwd(), arg);
  if (emitKind !== undefined) return emit(path, arg, emitKind, designOverride, designs);
  const { file, guest, kase } = parseReport(readText(path));
  const design = designIn(designs, designOverride ?? file.design);
  const host = hostByName(file.host);
  let r: ReturnType<typeof replay>;
  try {
    r = replay({ design, host, cpus: file.cpus, guest, gen: file.gen }, kase);
  } catch (e) {
    // The design refused the guest the report gives it (KVM_SET_MSRS failed): the input, not the suite.
    if (e instanceof SetupError) throw new ReplayInputError(`report.json: guest: ${e.message}`);
    throw e;
  }

  const n = kase.program.length;
  const shape =
    kase.property === 'no-leak'
      ? `${plural(n, 'command pair')} (changed against original host values)`
      : kase.property === 'invisible'
        ? `${plural(n, 'command')} and ${String(kase.insertion.command)} inserted before program[${kase.insertion.at}]`
        : kase.property === 'host-undisturbed'
          ? `${plural(n, 'command')}, against its host commands on a host without the guest`
          : plural(n, 'command');
  console.log(`replay ${file.id}: ${file.title}`);
  console.log(
    `property ${kase.property}; design ${design.id} on ${file.host} (${file.cpus} pCPUs); guest ${describeGuest(guest)}; ${shape}\n`,
  );
  console.log(traceText(r));
  console.log('');
  if (fails(r)) {
    const o = r.divergence;
    const sig = caseSignature(design.id, kase, o);
    console.log(`still diverges: ${divergenceSentence(kase.property, o)}`);
    console.log(`rule: ${caseRule(kase, o)}`);
    if (sig !== file.signature) console.log(`note: the signature is now ${sig}, the report's is ${file.signature}`);
    return EXIT.failed;
  }
  if (r.divergence !== null && r.known !== null)
    console.log(
      `no longer diverges as reported: the first divergence is the declared known divergence '${r.known.id}' (${r.known.title})`,
    );
  else if (kase.property === 'host-undisturbed')
    console.log('no longer diverges: every host event counts the same with the guest and without it');
  else if (kase.property === 'conformance' || kase.property === 'lbr-freeze')
    console.log(`no longer diverges: ${r.steps.length} of ${n} commands ran and every observation matches bare metal`);
  else console.log(`no longer diverges: every guest observation is the same in both runs`);
  return EXIT.passed;
}

/**
 * The replay command over a table of designs (the built-in ones for `npm run replay`; a test adds
 * its planted ones). Sets nothing global; returns the exit status.
 */
export function replayCli(argv: readonly string[], designs: readonly Design[] = DESIGNS): Promise<number> {
  const cli = new Command('vpmu-conformance replay')
    .description(
      "Replay a report: make its property's comparison on its program, print the trace, exit 1 if it still diverges (npm run replay -- FILE).",
    )
    .argument('<report.json>', 'a report.json written by npm start (reports/out/<id>/report.json)')
    .addOption(
      new Option('--design <id>', "replay under another design than the report's (e.g. the fixed one)").choices(
        designs.map((d) => d.id),
      ),
    )
    .addOption(
      new Option(
        '--emit <kind>',
        'instead of replaying, write the reproducer beside the report: c (standalone, raw /dev/kvm), selftest (KVM selftest) or both',
      ).choices(['c', 'selftest', 'both']),
    )
    .addHelpText('after', `\n${EXIT_HELP}`)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  return guard(
    'replay',
    () => {
      cli.parse([...argv], { from: 'user' });
      const o = cli.opts<{ design?: string; emit?: string }>();
      return run(cli.args[0]!, o.design, designs, o.emit);
    },
    INPUT_ERRORS,
  );
}
