/**
 * A reproducer's plan: the guest program as ops (each op's code and the steps the model runs for
 * it), the sync points where the host acts, and the commands the VMM issues before the first
 * KVM_RUN. The per-command table (table.ts) fills it in; simulate.ts runs it on the model.
 */

import type { WorldCommand } from '../../scenarios/commands.js';
import { addr, Asm, FarPointers, LAYOUT, OBS_SLOTS, type Piece, type Placed, GuestLayoutError } from './guest.js';
import * as x86 from './x86.js';

/** A run of retired instructions the model executes as one GuestRun. */
export interface PiecesStep {
  readonly kind: 'pieces';
  readonly pieces: readonly Piece[];
}

/**
 * The instruction under test: the model command that stands for it, where it is, how long it is
 * (what the #GP handler skips), the CPL it runs at, and the observation slot its result goes to.
 */
export interface MainStep {
  readonly kind: 'main';
  readonly command: WorldCommand;
  readonly insn: Placed;
  readonly len: 2 | 4;
  readonly cpl: number;
  readonly slot: number;
}

/** A host-side command the model runs at this point (the C runs it at the sync before it). */
export interface HostStep {
  readonly kind: 'host';
  readonly command: WorldCommand;
  /** Its index in the program. */
  readonly index: number;
}

export type Step = PiecesStep | MainStep | HostStep;

export interface Op {
  /** The program index of the command it comes from; null for a sync point or the end. */
  readonly source: number | null;
  readonly kind: 'guest' | 'sync' | 'done';
  /** What it is, as the C comment and the divergence message name it. */
  readonly label: string;
  readonly steps: readonly Step[];
  readonly placed: readonly Placed[];
  /** The sync id, for a sync op. */
  readonly sync?: number;
}

export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/** Observation slot addresses: value at +0, vector at +8. */
export const slotValue = (k: number) => addr(LAYOUT.obs + 16 * k);
export const slotVector = (k: number) => addr(LAYOUT.obs + 16 * k + 8);

/** Builds the ops of one program, in order, on one code stream. */
export class PlanBuilder {
  readonly asm = new Asm(addr(LAYOUT.code));
  readonly far = new FarPointers();
  readonly ops: Op[] = [];
  private slots = 0;
  private syncs = 0;

  /** A new observation slot. */
  slot(): number {
    if (this.slots >= OBS_SLOTS) throw new PlanError(`more than ${OBS_SLOTS} observations`);
    return this.slots++;
  }

  get slotCount(): number {
    return this.slots;
  }

  get syncCount(): number {
    return this.syncs;
  }

  /** Starts an op; the returned builder appends its code and steps. */
  op(source: number | null, label: string): OpBuilder {
    return new OpBuilder(this, source, label);
  }

  /** A sync point: `mov $id,%eax; out %eax,$SYNC`; the host steps follow it. */
  sync(host: readonly HostStep[], port: number): Op {
    const id = ++this.syncs;
    const b = this.op(null, `sync ${id}`);
    b.pieces(0, [x86.movImm32('eax', id), x86.outEax(port)]);
    for (const h of host) b.host(h.command, h.index);
    return b.finish('sync', id);
  }

  /** The end: `xor %eax,%eax; out %eax,$DONE`, then `jmp .` (never resumed). */
  done(port: number): Op {
    const b = this.op(null, 'end');
    b.pieces(0, [x86.xorSelf('eax'), x86.outEax(port)]);
    this.asm.put(x86.jmpRel8(-2));
    const op = b.finish('done');
    if (this.asm.at > addr(LAYOUT.codeEnd))
      throw new GuestLayoutError(`the program needs ${this.asm.at - addr(LAYOUT.code)} bytes of code`);
    return op;
  }
}

export class OpBuilder {
  private readonly steps: Step[] = [];
  private readonly first: number;
  constructor(
    readonly plan: PlanBuilder,
    private readonly source: number | null,
    private readonly label: string,
  ) {
    this.first = plan.asm.placed.length;
  }

  get asm(): Asm {
    return this.plan.asm;
  }

  /** Appends pieces to the op's current run of instructions. */
  add(pieces: readonly Piece[]): void {
    const last = this.steps.at(-1);
    if (last?.kind === 'pieces')
      this.steps[this.steps.length - 1] = { kind: 'pieces', pieces: [...last.pieces, ...pieces] };
    else this.steps.push({ kind: 'pieces', pieces });
  }

  /** Plain instructions at `cpl`, as one piece. */
  pieces(cpl: number, insns: readonly x86.Insn[]): void {
    const start = this.asm.at;
    for (const i of insns) this.asm.put(i);
    this.add([{ cpl, instructions: insns.length, untaken: 0, branches: [], start, resume: this.asm.at }]);
  }

  /** The instruction under test. */
  main(command: WorldCommand, i: x86.Insn, cpl: number, slot: number): MainStep {
    if (i.bytes.length !== 2 && i.bytes.length !== 4)
      throw new PlanError(`the #GP handler skips 2 or 4 bytes, not ${i.bytes.length} (${i.asm})`);
    const s: MainStep = { kind: 'main', command, insn: this.asm.put(i), len: i.bytes.length, cpl, slot };
    this.steps.push(s);
    return s;
  }

  host(command: WorldCommand, index: number): void {
    this.steps.push({ kind: 'host', command, index });
  }

  finish(kind: Op['kind'] = 'guest', sync?: number): Op {
    const op: Op = {
      source: this.source,
      kind,
      label: this.label,
      steps: this.steps,
      placed: this.plan.asm.placed.slice(this.first),
      ...(sync !== undefined ? { sync } : {}),
    };
    this.plan.ops.push(op);
    return op;
  }
}
