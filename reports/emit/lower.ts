/**
 * From a program to a reproducer's plan: the commands before the first guest command are the
 * VMM's prefix (run before the first KVM_RUN); after it, each guest command becomes an op of the
 * guest program, and each run of host commands a sync point the guest stops at so the host can
 * act. Commands user space cannot reproduce are left out (and named).
 */

import { GuestRun, type WorldCommand } from '../../scenarios/commands.js';
import { PORT } from './guest.js';
import { type HostStep, type Op, PlanBuilder } from './plan.js';
import { AMPLIFIER, type CommandEmitter, emitterOf, loopOp } from './table.js';

export interface Plan {
  readonly builder: PlanBuilder;
  /** Host commands before the first guest command, run before the first KVM_RUN. */
  readonly prefix: readonly HostStep[];
  readonly ops: readonly Op[];
  /** Commands left out, with why. */
  readonly dropped: readonly { readonly index: number; readonly command: WorldCommand; readonly why: string }[];
  /** Each program command's entry. */
  readonly emitters: readonly CommandEmitter[];
}

export interface LowerOptions {
  /**
   * After each guest run, the guest retires AMPLIFIER more instructions at the run's last CPL: a
   * leak of guest work into host counts then stands far out of the host's own noise.
   */
  readonly amplify?: boolean;
}

export function lowerProgram(program: readonly WorldCommand[], opts: LowerOptions = {}): Plan {
  const b = new PlanBuilder();
  const emitters = program.map(emitterOf);
  const prefix: HostStep[] = [];
  const dropped: { index: number; command: WorldCommand; why: string }[] = [];
  let pending: HostStep[] = [];
  let started = false;

  const flush = () => {
    if (pending.length === 0) return;
    b.sync(pending, PORT.sync);
    for (const h of pending) {
      const e = emitters[h.index]!;
      if (e.guestAfter === undefined) continue;
      const op = b.op(h.index, `${e.label(h.command)}: the guest runs meanwhile`);
      e.guestAfter(h.command, op);
      op.finish();
    }
    pending = [];
  };

  program.forEach((command, index) => {
    const e = emitters[index]!;
    const why = e.dropped?.(command) ?? e.leftOutIf?.(command) ?? null;
    if (why !== null) {
      dropped.push({ index, command, why });
      return;
    }
    if (e.guest === undefined) {
      (started ? pending : prefix).push({ kind: 'host', command, index });
      return;
    }
    started = true;
    flush();
    const op = b.op(index, e.label(command));
    e.guest(command, op);
    op.finish();
    if (opts.amplify === true && command instanceof GuestRun) {
      const cpl = command.units.at(-1)?.cpl ?? 3;
      const amp = b.op(
        index,
        `the guest retires ${AMPLIFIER.iterations * (AMPLIFIER.body + 2) + 1} more instructions at CPL ${cpl}`,
      );
      loopOp(amp, AMPLIFIER, cpl);
      amp.finish();
    }
  });
  flush();
  b.done(PORT.done);
  return { builder: b, prefix, ops: b.ops, dropped, emitters };
}

/** The program the reproducer runs, as the model runs it: without the dropped commands. */
export function reproducedProgram(program: readonly WorldCommand[], plan: Plan): WorldCommand[] {
  const gone = new Set(plan.dropped.map((d) => d.index));
  return program.filter((_c, i) => !gone.has(i));
}
