/**
 * `npm run declarations`: finds, for every declared divergence of every faithful design and series, a short generated
 * program the design meets it on, and writes them to test/properties/declarations_met.json, which
 * test/properties/declarations_met.test.ts replays. A declaration no program meets excuses nothing the design does:
 * it is either stale or reached only by hand-written tests, and the run lists it.
 *
 * The search runs each design's conformance checks (every default generation profile) and vmm-conformance on every
 * built-in host, seed after seed, with a `known` map that throws when a declaration not yet in the corpus is met:
 * fast-check takes that for a failure and shrinks the program to a short one that still meets one.
 * `-- --seeds N` (default 6): seeds per check without a new find before it moves on; `-- --design ID...`: only these
 * designs, the others' programs kept. Exit status 0, or 2 on bad usage (one line).
 */

import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { Command, CommanderError } from 'commander';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { type Check, designChecks } from '../properties/checks.js';
import { DESIGNS } from '../designs/registry.js';
import type { Design } from '../properties/design.js';
import { OPT_IN_GENERATION_PROFILES } from '../scenarios/generation.js';
import { guestToJson, programToJson } from '../scenarios/serialize.js';
import type { GuestConfig } from '../scenarios/world.js';
import {
  CORPUS_PATH,
  type MetEntry,
  SEARCHED_CHECKS,
  corpusDesigns,
  ownDeclarations,
  readCorpus,
} from '../test/properties/declarations_corpus.js';

/** Thrown from `known.set` when a declaration still wanted is met: the program is a find. */
class Met extends Error {
  constructor(readonly id: string) {
    super(`meets ${id}`);
  }
}

/** A `known` map that trips on the ids still wanted. */
class Tripwire extends Map<string, number> {
  constructor(private readonly wanted: ReadonlySet<string>) {
    super();
  }
  override set(k: string, v: number): this {
    if (this.wanted.has(k)) throw new Met(k);
    return super.set(k, v);
  }
}

function search(
  designs: readonly Design[],
  seedsWithoutFind: number,
): { entries: MetEntry[]; unmet: Map<string, string[]> } {
  const entries: MetEntry[] = [];
  const unmet = new Map<string, string[]>();
  for (const design of designs) {
    const wanted = new Set(ownDeclarations(design, DESIGNS));
    let seed = 1;
    for (const [host, profile] of Object.entries(BUILTIN_PROFILES)) {
      // Opt-in generation too: a declaration met only on guests beyond what KVM reports is still one to hold.
      const checks = designChecks(design, host, profile).filter((c: Check) => SEARCHED_CHECKS.includes(c.id));
      for (const c of checks) {
        for (let dry = 0; dry < seedsWithoutFind && wanted.size > 0;) {
          const d = fc.check(c.property(new Tripwire(wanted)), { seed: seed++, numRuns: 400 });
          if (!d.failed || !(d.errorInstance instanceof Met)) {
            // The opt-in profile's guests go beyond what KVM reports, where a base's undeclared divergences are known.
            if (d.failed && !(c.gen !== undefined && OPT_IN_GENERATION_PROFILES.includes(c.gen)))
              throw new Error(`${design.id} ${c.id}/${c.gen ?? ''} on ${host} failed: ${String(d.errorInstance)}`);
            dry++;
            continue;
          }
          const id = d.errorInstance.id;
          const ce = d.counterexample as readonly [readonly [GuestConfig, unknown]];
          const program = c.programOf!(ce);
          entries.push({
            design: design.id,
            host,
            check: c.id,
            ...(c.gen !== undefined ? { gen: c.gen } : {}),
            id,
            guest: guestToJson(ce[0][0]),
            program: programToJson(program),
          });
          wanted.delete(id);
          console.log(`${design.id}: ${id} on ${host}, ${c.id}${c.gen ? `/${c.gen}` : ''}, ${program.length} commands`);
        }
      }
    }
    if (wanted.size > 0) unmet.set(design.id, [...wanted]);
  }
  return { entries, unmet };
}

function main(argv: readonly string[]): number {
  const cli = new Command('npm run declarations')
    .option('--seeds <n>', 'seeds per check without a new find before the search moves on', '6')
    .option('--design <id...>', "search these designs again, keeping the others' programs")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    cli.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  const seeds = Number(cli.opts<{ seeds: string }>().seeds);
  if (!Number.isInteger(seeds) || seeds < 1) {
    console.error(
      `npm run declarations: --seeds must be a positive integer, not '${cli.opts<{ seeds: string }>().seeds}'`,
    );
    return 2;
  }
  const all = corpusDesigns(DESIGNS);
  const asked = cli.opts<{ design?: string[] }>().design;
  const unknown = asked?.find((id) => !all.some((d) => d.id === id));
  if (unknown !== undefined) {
    console.error(`npm run declarations: no design '${unknown}' among ${all.map((d) => d.id).join(', ')}`);
    return 2;
  }
  const designs = asked === undefined ? all : all.filter((d) => asked.includes(d.id));
  const { entries, unmet } = search(designs, seeds);
  const kept = asked === undefined ? [] : readCorpus().filter((e) => !asked.includes(e.design));
  writeFileSync(CORPUS_PATH, `${JSON.stringify([...kept, ...entries], null, 1)}\n`);
  console.log(`${entries.length} declarations met, written to ${CORPUS_PATH}`);
  for (const [d, ids] of unmet) console.log(`not met on ${d}: ${ids.join(', ')}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
