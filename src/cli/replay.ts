/**
 * `npm run replay -- <report.json>`: rebuilds the world a report describes (design by id, host
 * by BUILTIN_PROFILES name, the guest configuration), runs its plain program, prints every
 * observation with the first divergence marked, and says whether the finding still stands.
 *
 * Exit status: 1 if the program still fails (diverges, and not as a declared known divergence),
 * 0 if it no longer does, 2 if the report cannot be replayed (no such file, not a report, an
 * unknown design or host): one line on stderr, no stack trace.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import type { Profile } from '../model/hw/profile.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { DESIGN_IDS, designById, UnknownDesignError } from '../properties/designs.js';
import { parseReport, ReportFormatError } from '../reports/file.js';
import { describeGuest, traceText } from '../reports/render.js';
import { fails, replay } from '../reports/replay.js';
import { ruleFor } from '../reports/rules.js';
import { signatureOf } from '../reports/signature.js';
import { Divergence } from '../scenarios/commands.js';

/** A replay that cannot start: the message is the whole story. */
class ReplayInputError extends Error {
  override readonly name = 'ReplayInputError';
}

const INPUT_ERRORS = [ReplayInputError, ReportFormatError, UnknownDesignError];

function hostByName(name: string): Profile {
  const p = Object.hasOwn(BUILTIN_PROFILES, name) ? BUILTIN_PROFILES[name] : undefined;
  if (p === undefined) throw new ReplayInputError(`unknown host profile '${name}' (known: ${Object.keys(BUILTIN_PROFILES).join(', ')})`);
  return p;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ReplayInputError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
}

/** Replays the report at `arg`; returns the exit status. */
function run(arg: string, designOverride: string | undefined): number {
  // npm runs scripts from the package root; a relative path means where the user typed it.
  const path = resolve(process.env.INIT_CWD ?? process.cwd(), arg);
  const { file, guest, program } = parseReport(readText(path));
  const design = designById(designOverride ?? file.design);
  const host = hostByName(file.host);
  const r = replay({ design, host, cpus: file.cpus, guest }, program);

  console.log(`replay ${file.id}: ${file.title}`);
  console.log(`design ${design.id} on ${file.host} (${file.cpus} pCPUs); guest ${describeGuest(guest)}; ${program.length} command${program.length === 1 ? '' : 's'}\n`);
  console.log(traceText(r));
  console.log('');
  if (fails(r)) {
    const o = r.divergence;
    const sig = signatureOf(design.id, o);
    console.log(`still diverges: ${new Divergence(o).message}`);
    console.log(`rule: ${ruleFor(o)}`);
    if (sig !== file.signature) console.log(`note: the signature is now ${sig}, the report's is ${file.signature}`);
    return 1;
  }
  if (r.divergence !== null && r.known !== null)
    console.log(`no longer diverges as reported: the first divergence is the declared known divergence '${r.known.id}' (${r.known.title})`);
  else console.log(`no longer diverges: ${r.steps.length} of ${program.length} commands ran and every observation matches bare metal`);
  return 0;
}

const cli = new Command('replay')
  .description('Replay a conformance report: run its program, print the trace, exit 1 if it still diverges.')
  .argument('<report.json>', 'a report.json written by npm start (reports/out/<id>/report.json)')
  .addOption(new Option('--design <id>', "replay under another design than the report's (e.g. the fixed one)").choices(DESIGN_IDS))
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

try {
  cli.parse();
  process.exitCode = run(cli.args[0]!, cli.opts<{ design?: string }>().design);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2; // commander printed the message
  else if (INPUT_ERRORS.some((k) => e instanceof k)) {
    console.error(`replay: ${(e as Error).message}`);
    process.exitCode = 2;
  } else {
    console.error(`replay: internal error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    process.exitCode = 2;
  }
}
