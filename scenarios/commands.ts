/**
 * The command vocabulary, as immutable fast-check commands. Each command runs on the world (the
 * system under test and the oracle side by side) and throws a Divergence at the first
 * observation where they differ. toString() prints code that pastes into a regression test:
 * `fc.modelRun(setup, [new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n), ...])`.
 */

import type fc from 'fast-check';
import type { WorkUnit } from '../model/hw/work.js';
import type { PerfEventAttr } from '../model/host/types.js';
import type { EmulatedInsn } from '../model/kvm/types.js';
import type { World } from './world.js';
import { describeObservation, diverges, type Observation, showOutcome } from './observation.js';
import {
  type DriverEventSpec,
  type DriverLbrSpec,
  type DriverOverflowSpec,
  type DriverParams,
  runDriver,
} from './driver.js';

export class Divergence extends Error {
  override readonly name = 'Divergence';
  /** The world it happened in, for the history of the program. */
  world: World | null = null;
  constructor(
    readonly observation: Observation,
    /** What the other side is: bare metal for conformance, the plain program for property 4. */
    readonly against = 'bare metal shows',
  ) {
    super(
      `step ${observation.step}, vCPU ${observation.vcpu}: ${describeObservation(observation)}: guest saw ${showOutcome(observation.sut)}, ${against} ${showOutcome(observation.oracle)}`,
    );
  }
}

/** fast-check's model is unused: the oracle lives inside the world, beside the SUT. */
export type NoModel = Record<string, never>;
export type WorldCommand = fc.Command<NoModel, World>;

/**
 * Throws a Divergence at the first observation where the two sides differ, unless the world only records or its hook
 * takes the divergence (the world then records only, and the program goes on).
 */
export function assertSame(obs: readonly Observation[], w?: World, against?: string): void {
  if (w !== undefined && !w.comparing) return;
  for (const o of obs)
    if (diverges(o)) {
      if (w?.onDivergence?.(o, w) === true) {
        w.comparing = false;
        return;
      }
      const d = new Divergence(o, against);
      d.world = w ?? null;
      throw d;
    }
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** Every command runs whatever the state: indices are reduced modulo what exists at run time. */
export abstract class AlwaysRuns implements WorldCommand {
  check(): boolean {
    return true;
  }
  abstract run(m: NoModel, w: World): void;
  abstract toString(): string;
}

/**
 * The last argument of a guest instruction whose exit a VMM interrupts to migrate the vCPU (QEMU pausing it with a
 * signal): KVM_RUN returns before the next VM-entry, with what the exit handler requested still pending; the VMM
 * saves the vCPU, restores it onto this pCPU, and runs it again. Absent: the guest runs on.
 */
const savedAt = (cpu: number | undefined) =>
  cpu === undefined ? '' : `, /* saved and restored at its exit onto pCPU */ ${cpu}`;

export class GuestWrmsr extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly msr: number,
    readonly value: bigint,
    readonly saveRestoreTo?: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestWrmsr(this.vcpu, this.msr, this.value, this.saveRestoreTo), w);
  }
  toString(): string {
    return `new GuestWrmsr(${this.vcpu}, ${hex(this.msr)}, ${hex(this.value)}n${savedAt(this.saveRestoreTo)})`;
  }
}

export class GuestRdmsr extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly msr: number,
    readonly saveRestoreTo?: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestRdmsr(this.vcpu, this.msr, this.saveRestoreTo), w);
  }
  toString(): string {
    return `new GuestRdmsr(${this.vcpu}, ${hex(this.msr)}${savedAt(this.saveRestoreTo)})`;
  }
}

export class GuestRdpmc extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly ecx: number,
    readonly cpl: number,
    readonly saveRestoreTo?: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestRdpmc(this.vcpu, this.ecx, this.cpl, this.saveRestoreTo), w);
  }
  toString(): string {
    return `new GuestRdpmc(${this.vcpu}, ${hex(this.ecx)}, ${this.cpl}${savedAt(this.saveRestoreTo)})`;
  }
}

/**
 * An instruction behind KVM's forced-emulation prefix (KVM_FEP), as pmu_counters_test and kvm-unit-tests run them:
 * KVM emulates it and counts it as retired (a branch for JNE and LOOP); bare metal retires the instruction (W7).
 * `taken` says whether a branch jumps (LOOP back to its loop, JNE forward); KVM's count does not depend on it.
 */
export class GuestEmulate extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly insn: EmulatedInsn,
    readonly cpl: number,
    readonly taken = false,
    readonly saveRestoreTo?: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestEmulate(this.vcpu, this.insn, this.cpl, this.taken, this.saveRestoreTo), w);
  }
  toString(): string {
    const saved = savedAt(this.saveRestoreTo);
    return `new GuestEmulate(${this.vcpu}, '${this.insn}', ${this.cpl}${this.taken || saved !== '' ? `, ${this.taken}` : ''}${saved})`;
  }
}

/** A guest instruction a VMM can interrupt at its exit. */
export type GuestInstruction = GuestWrmsr | GuestRdmsr | GuestRdpmc | GuestEmulate;

/** `c` with the VMM saving the vCPU at its exit and restoring it onto pCPU `cpu` (see `savedAt`). */
export function savedAtExit(c: GuestInstruction, cpu: number): GuestInstruction {
  if (c instanceof GuestWrmsr) return new GuestWrmsr(c.vcpu, c.msr, c.value, cpu);
  if (c instanceof GuestRdmsr) return new GuestRdmsr(c.vcpu, c.msr, cpu);
  if (c instanceof GuestRdpmc) return new GuestRdpmc(c.vcpu, c.ecx, c.cpl, cpu);
  return new GuestEmulate(c.vcpu, c.insn, c.cpl, c.taken, cpu);
}

/** Prints a work unit as an object literal (bigints as `0x…n`). */
export function unitToCode(u: WorkUnit): string {
  return JSON.stringify(u, (_k, v: unknown) => (typeof v === 'bigint' ? `__BIG__${hex(v)}n` : v))
    .replace(/"__BIG__(0x[0-9a-f]+n)"/g, '$1')
    .replace(/"([a-zA-Z]+)":/g, '$1: ')
    .replace(/,/g, ', ');
}

export class GuestRun extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestRun(this.vcpu, this.units), w);
  }
  toString(): string {
    return `new GuestRun(${this.vcpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

export class Migrate extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly cpu: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.migrate(this.vcpu, this.cpu);
  }
  toString(): string {
    return `new Migrate(${this.vcpu}, ${this.cpu})`;
  }
}

export class SaveRestore extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly cpu: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.saveRestore(this.vcpu, this.cpu);
  }
  toString(): string {
    return `new SaveRestore(${this.vcpu}, ${this.cpu})`;
  }
}

/** A host user opens a cpu-bound perf event (attr fields as in perf_event_attr). */
export class HostOpen extends AlwaysRuns {
  constructor(
    readonly cpu: number,
    readonly attr: PerfEventAttr,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.hostOpen(this.cpu, this.attr);
  }
  toString(): string {
    const a = this.attr;
    const fields = [
      `config: ${hex(a.config)}n`,
      a.sample_period !== 0n ? `sample_period: ${hex(a.sample_period)}n` : '',
      a.pinned ? 'pinned: true' : '',
      a.exclusive ? 'exclusive: true' : '',
      a.exclude_user ? 'exclude_user: true' : '',
      a.exclude_kernel ? 'exclude_kernel: true' : '',
      a.exclude_host ? 'exclude_host: true' : '',
      a.exclude_guest ? 'exclude_guest: true' : '',
      a.branchSample !== undefined
        ? `branchSample: ${JSON.stringify(a.branchSample).replace(/"([a-zA-Z]+)":/g, '$1: ')}`
        : '',
    ].filter((f) => f !== '');
    return `new HostOpen(${this.cpu}, attr({ ${fields.join(', ')} }))`;
  }
}

/** Host work on a pCPU: another task runs there for a while. */
export class HostWork extends AlwaysRuns {
  constructor(
    readonly cpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.hostWork(this.cpu, this.units);
  }
  toString(): string {
    return `new HostWork(${this.cpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

/** Guest XSAVES of the Arch LBR state component (IA32_XSS.LBR set first). */
export class GuestXsaves extends AlwaysRuns {
  constructor(readonly vcpu: number) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestXsaves(this.vcpu), w);
  }
  toString(): string {
    return `new GuestXsaves(${this.vcpu})`;
  }
}

/** Guest XRSTORS of the Arch LBR image it saved last. */
export class GuestXrstors extends AlwaysRuns {
  constructor(readonly vcpu: number) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSame(w.guestXrstors(this.vcpu), w);
  }
  toString(): string {
    return `new GuestXrstors(${this.vcpu})`;
  }
}

/** A host user opens a perf event on a vCPU's thread (perf record -p <tid>); attr printed as HostOpen does. */
export class HostOpenThread extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly attr: PerfEventAttr,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.hostOpenOnThread(this.vcpu, this.attr);
  }
  toString(): string {
    return new HostOpen(0, this.attr).toString().replace(/^new HostOpen\(0, /, `new HostOpenThread(${this.vcpu}, `);
  }
}

/** A host task preempts the vCPU thread on its pCPU and runs these units there. */
export class Preempt extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.preempt(this.vcpu, this.units);
  }
  toString(): string {
    return `new Preempt(${this.vcpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

export type HostEventOp = 'enable' | 'disable' | 'read' | 'close';

/** A host user enables, disables, reads or closes the k-th event it opened. */
export class HostEvent extends AlwaysRuns {
  constructor(
    readonly k: number,
    readonly op: HostEventOp,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.hostEventOp(this.k, this.op);
  }
  toString(): string {
    return `new HostEvent(${this.k}, '${this.op}')`;
  }
}

/** An NMI on a pCPU while the host runs there. */
export class HostNmi extends AlwaysRuns {
  constructor(readonly cpu: number) {
    super();
  }
  run(_m: NoModel, w: World): void {
    w.hostNmi(this.cpu);
  }
  toString(): string {
    return `new HostNmi(${this.cpu})`;
  }
}

// ---- guest driver routines (scenarios/driver.ts): each side runs the routine on what it reads ----

const bool = (b: boolean) => (b ? 'true' : 'false');

/** Linux perf boots in the guest: the probe (PERF_CAPABILITIES, selectors, a counter, the LBRs), LVTPC, enable-all. */
export class DriverBoot extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly params: DriverParams,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'boot', params: this.params }, (o) => assertSame(o, w));
  }
  toString(): string {
    const p = this.params;
    return `new DriverBoot(${this.vcpu}, { kernel: '${p.kernel}', ack: '${p.ack}', lvtpc: ${hex(p.lvtpc)}n })`;
  }
}

/** The guest opens perf events (perf record/stat): each on a counter, preset to -period, enabled. */
export class DriverOpen extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly events: readonly DriverEventSpec[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'open', events: this.events }, (o) => assertSame(o, w));
  }
  toString(): string {
    const evs = this.events.map(
      (e) => `{ event: ${hex(e.event)}n, usr: ${bool(e.usr)}, os: ${bool(e.os)}, period: ${hex(e.period)}n }`,
    );
    return `new DriverOpen(${this.vcpu}, [${evs.join(', ')}])`;
  }
}

/** The guest closes its k-th event (by counter, modulo how many it has). */
export class DriverClose extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly k: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'close', k: this.k }, (o) => assertSame(o, w));
  }
  toString(): string {
    return `new DriverClose(${this.vcpu}, ${this.k})`;
  }
}

/** The guest runs these units under its driver: a PMI after a unit runs the guest's handler. */
export class DriverRun extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'run', units: this.units }, (o) => assertSame(o, w));
  }
  toString(): string {
    return `new DriverRun(${this.vcpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

/** A guest context switch away from the task with the events (its counts saved), these units, and back. */
export class DriverSwitch extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'switch', units: this.units }, (o) => assertSame(o, w));
  }
  toString(): string {
    return `new DriverSwitch(${this.vcpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

/** An NMI that is not the PMU's (a watchdog, a backtrace IPI) reaches the guest's perf NMI handler. */
export class DriverNmi extends AlwaysRuns {
  constructor(readonly vcpu: number) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'nmi' }, (o) => assertSame(o, w));
  }
  toString(): string {
    return `new DriverNmi(${this.vcpu})`;
  }
}

/**
 * kvm-unit-tests' check_counter_overflow on one counter: preset `left` instructions before the wrap, counted through
 * the units and `fep` emulated instructions, INT set or not; the status read, acknowledged and read again.
 */
export class DriverCheckOverflow extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly spec: DriverOverflowSpec,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'overflow', spec: this.spec, units: this.units }, (o) => assertSame(o, w));
  }
  toString(): string {
    const s = this.spec;
    return `new DriverCheckOverflow(${this.vcpu}, { counter: ${s.counter}, int: ${bool(s.int)}, left: ${hex(s.left)}n, fep: ${s.fep} }, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

/** An LBR user joins the guest's events (perf record -b / --call-graph lbr). */
export class DriverLbr extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly lbr: DriverLbrSpec,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    runDriver(w, this.vcpu, { kind: 'lbr', lbr: this.lbr }, (o) => assertSame(o, w));
  }
  toString(): string {
    return `new DriverLbr(${this.vcpu}, { select: ${hex(this.lbr.select)}n, callStack: ${bool(this.lbr.callStack)} })`;
  }
}
