/**
 * The guest image every reproducer loads: one 4 MiB region at a fixed guest-physical address,
 * identity mapped with 2 MiB pages (user-accessible, for work at CPL 3), with its own GDT, IDT
 * and TSS, exception and PMI handlers as fixed stubs, and the program as straight-line code.
 * The standalone reproducer and the selftest load the same bytes at the same address, so one
 * set of predictions (branch addresses in LBR records included) serves both.
 *
 * Every instruction the guest retires is known here: the program's own (each op's set-up, the
 * instruction under test, the stores of its result) and the handlers' paths. A unit of work
 * (`Piece`) describes a run of them as the model counts it, so the oracle predicts what the
 * hardware counts, not what the report's program alone would.
 */

import type { BranchKind } from '../../model/hw/state.js';
import type { WorkUnit } from '../../model/hw/work.js';
import { X2APIC_EOI } from '../../model/hw/msr/system.js';
import * as x86 from './x86.js';

/** Offsets inside the region; `GUEST_BASE` + offset is both the guest-physical and the linear address. */
export const GUEST_BASE = 0x4000_0000;
export const GUEST_SIZE = 0x40_0000;
export const LAYOUT = {
  pml4: 0x1000,
  pdpt: 0x2000,
  pd: 0x3000,
  gdt: 0x4000,
  idt: 0x5000,
  tss: 0x6000,
  /** m16:64 far pointers for FAR branches at the unit's own CPL (16 bytes each). */
  farPtrs: 0x7000,
  stubs: 0x8000,
  code: 0x10000,
  codeEnd: 0x100000,
  /** Observation slot k: value at +16k, exception vector at +16k+8. */
  obs: 0x100000,
  obsEnd: 0x110000,
  /** PMI log: the count, then the vector and the interrupted RIP of each PMI. */
  pmiCount: 0x110000,
  pmiVec: 0x118000,
  pmiRip: 0x120000,
  pmiEnd: 0x128000,
  /** XSAVES area (64-byte aligned, compacted format). */
  xsave: 0x130000,
  /** Ring-0 stack for exceptions and interrupts taken at CPL > 0 (TSS.RSP0). */
  rsp0: 0x1e0000,
  stack: 0x1ff000,
} as const;
export const PMI_LOG_MAX = (LAYOUT.pmiRip - LAYOUT.pmiVec) / 8;
export const OBS_SLOTS = (LAYOUT.obsEnd - LAYOUT.obs) / 16;
const FAR_PTRS_MAX = (LAYOUT.stubs - LAYOUT.farPtrs) / 16;

export const addr = (offset: number) => GUEST_BASE + offset;

/** GDT selectors. SYSRET takes CS = STAR[63:48] + 16, SS = STAR[63:48] + 8 (RPL 3). */
export const SEL = {
  kernelCs: 0x08,
  kernelDs: 0x10,
  tss: 0x18,
  userDs: 0x28,
  userCs: 0x30,
  ring1Cs: 0x38,
  ring1Ds: 0x40,
  ring2Cs: 0x48,
  ring2Ds: 0x50,
} as const;
export const GDT_ENTRIES = 11;
/** STAR: SYSRET base selector 0x20 (CS 0x33, SS 0x2b), SYSCALL CS 0x08 (SS 0x10). */
export const STAR_VALUE = (0x20n << 48n) | (BigInt(SEL.kernelCs) << 32n);
/** RFLAGS the guest runs with: IF set, so fixed-vector PMIs are taken (bit 1 is always 1). */
export const GUEST_RFLAGS = 0x202;

/** Port numbers of the guest-to-host channel. */
export const PORT = { sync: 0x10, done: 0x11, fatal: 0x12 } as const;

/** Vectors with a handler of their own; every other vector below 32 is fatal (a harness error). */
export const NMI_VECTOR = 2;
export const GP_VECTOR = 13;

/** Stub offsets inside the stubs page. */
export const STUB = {
  landing: 0x000,
  gp: 0x010,
  nmi: 0x080,
  irqCommon: 0x100,
  /** Entry for vector v (32..255) at irqEntries + 16 * (v - 32). */
  irqEntries: 0x200,
  /** Entry for vector v (0..31) at fatal + 8 * v. */
  fatal: 0x1000,
} as const;

/** An instruction placed at its address, with what the C comment says about it. */
export interface Placed {
  readonly addr: number;
  readonly insn: x86.Insn;
}

/** A change of CPL: the side a ring-crossing instruction or event counts on is not pinned down. */
export interface Crossing {
  readonly from: number;
  readonly to: number;
}

/** A taken branch as the LBR records it (linear addresses of the branch and its target). */
export interface TakenBranch {
  readonly from: number;
  readonly to: number;
  readonly kind: BranchKind;
  /** A ring-crossing branch: the CPL it is recorded at is one of the two (decision D22). */
  readonly crossing?: Crossing;
}

/**
 * A run of retired instructions the model executes as one work unit. `cpl` null marks a
 * ring-crossing instruction (SYSRET, IRETQ, SYSCALL), whose CPL for counting and LBR filtering is
 * not pinned down (pmu-semantics.md §4.7, decision D22): the prediction tries both sides.
 */
export interface Piece {
  readonly cpl: number | null;
  readonly crossing?: Crossing;
  readonly instructions: number;
  readonly untaken: number;
  readonly branches: readonly TakenBranch[];
  /** Address of the first instruction (PMI windows start here). */
  readonly start: number;
  /** Address of the instruction that runs next (where an interrupt after the piece returns to). */
  readonly resume: number;
  /** The report's unit this piece stands for, whose inexact counts (cycles, LLC, slots) it carries. */
  readonly unit?: WorkUnit;
}

/** The CPL the guest is at after a piece. */
export const cplAfter = (p: Piece): number => p.crossing?.to ?? p.cpl ?? 0;

export class GuestLayoutError extends Error {
  override readonly name = 'GuestLayoutError';
}

/** Builds straight-line code at increasing addresses. */
export class Asm {
  readonly placed: Placed[] = [];
  constructor(public at: number) {}
  put(i: x86.Insn): Placed {
    const p = { addr: this.at, insn: i };
    this.placed.push(p);
    this.at += i.bytes.length;
    return p;
  }
}

/** Far pointers the program's FAR branches jump through. */
export class FarPointers {
  readonly entries: { readonly offset: number; readonly selector: number }[] = [];
  /** The address of a pointer to `target` with code selector `cs`. */
  add(target: number, cs: number): number {
    if (this.entries.length >= FAR_PTRS_MAX) throw new GuestLayoutError(`more than ${FAR_PTRS_MAX} FAR branches`);
    this.entries.push({ offset: target, selector: cs });
    return addr(LAYOUT.farPtrs + 16 * (this.entries.length - 1));
  }
}

export const codeSelector = (cpl: number) =>
  [SEL.kernelCs, SEL.ring1Cs | 1, SEL.ring2Cs | 2, SEL.userCs | 3][cpl] ?? SEL.kernelCs;
const dataSelector = (cpl: number) => [SEL.kernelDs, SEL.ring1Ds | 1, SEL.ring2Ds | 2, SEL.userDs | 3][cpl]!;

const plain = (a: Asm, cpl: number, insns: readonly x86.Insn[]): Piece => {
  const start = a.at;
  for (const i of insns) a.put(i);
  return { cpl, instructions: insns.length, untaken: 0, branches: [], start, resume: a.at };
};

/**
 * From CPL 0 to `cpl`: SYSRET for CPL 3, IRETQ through a built frame for CPL 1 and 2. Returns the
 * CPL-0 set-up and the ring-crossing instruction, which lands on the next byte.
 */
export function enterCpl(a: Asm, cpl: number): Piece[] {
  if (cpl === 3) {
    const setup = [x86.leaRip('rcx', 9), x86.movImm32('r11d', GUEST_RFLAGS)];
    const p = plain(a, 0, setup);
    const at = a.put(x86.sysretq());
    return [p, crossing(at, a.at, { from: 0, to: 3 })];
  }
  const setup = [
    x86.movRspToRax(),
    x86.pushImm8(dataSelector(cpl)),
    x86.pushRax(),
    x86.pushImm32(GUEST_RFLAGS),
    x86.pushImm8(codeSelector(cpl)),
    x86.leaRip('rax', 3), // push %rax (1) + iretq (2)
    x86.pushRax(),
  ];
  const p = plain(a, 0, setup);
  const at = a.put(x86.iretq());
  return [p, crossing(at, a.at, { from: 0, to: cpl })];
}

/** From `cpl` back to CPL 0: SYSCALL to the landing stub, which jumps back to the next byte. */
export function leaveCpl(a: Asm, cpl: number): Piece[] {
  const at = a.put(x86.syscall());
  const landing = addr(LAYOUT.stubs + STUB.landing);
  return [
    crossing(at, landing, { from: cpl, to: 0 }),
    {
      cpl: 0,
      instructions: 1,
      untaken: 0,
      branches: [{ from: landing, to: a.at, kind: 'NEAR_IND_JMP' }],
      start: landing,
      resume: a.at,
    },
  ];
}

/** A ring-crossing instruction at `at` whose far branch lands on `to`. */
export function crossing(at: Placed | number, to: number, c: Crossing): Piece {
  const from = typeof at === 'number' ? at : at.addr;
  return {
    cpl: null,
    crossing: c,
    instructions: 1,
    untaken: 0,
    branches: [{ from, to, kind: 'FAR', crossing: c }],
    start: from,
    resume: to,
  };
}

/**
 * The instructions of one work unit at its CPL: each taken branch of the unit by its kind (with
 * the fewest helpers that make it taken and leave the stack as it was), its untaken conditional
 * branches, and NOPs up to its instruction count. Helpers count as the unit's own instructions where
 * the unit has room; otherwise the unit retires more than the report's (the prediction counts
 * what is emitted).
 */
export function emitUnit(a: Asm, u: WorkUnit, far: FarPointers): Piece {
  const start = a.at;
  const branches: TakenBranch[] = [];
  let n = 0;
  const put = (i: x86.Insn) => {
    n++;
    return a.put(i);
  };
  const taken = (p: Placed, to: number, kind: BranchKind) => branches.push({ from: p.addr, to, kind });
  const brs = u.branches ?? [];
  const untaken = u.untakenBranches ?? 0;
  // ZF = 1 for the whole unit: JZ is taken, JNZ falls through, and nothing below writes the flags.
  if (untaken > 0 || brs.some((b) => b.kind === 'COND')) put(x86.xorSelf('eax'));
  for (const b of brs) {
    switch (b.kind) {
      case 'COND': {
        const p = put(x86.jzRel8(0));
        taken(p, a.at, 'COND');
        break;
      }
      case 'NEAR_REL_JMP': {
        const p = put(x86.jmpRel8(0));
        taken(p, a.at, 'NEAR_REL_JMP');
        break;
      }
      case 'NEAR_IND_JMP': {
        put(x86.leaRip('rax', 2));
        const p = put(x86.jmpRax());
        taken(p, a.at, 'NEAR_IND_JMP');
        break;
      }
      case 'NEAR_REL_CALL': {
        const p = put(x86.callRel32(0));
        taken(p, a.at, 'NEAR_REL_CALL');
        put(x86.leaRspPlus8());
        break;
      }
      case 'NEAR_IND_CALL': {
        put(x86.leaRip('rax', 2));
        const p = put(x86.callRax());
        taken(p, a.at, 'NEAR_IND_CALL');
        put(x86.leaRspPlus8());
        break;
      }
      case 'NEAR_RET': {
        // push $<address after the RET>: 5 bytes of push, 1 of ret.
        put(x86.pushImm32(a.at + 6));
        const p = put(x86.ret());
        taken(p, a.at, 'NEAR_RET');
        break;
      }
      case 'FAR': {
        // rex64 ljmp through a pointer to the next byte with this CPL's code selector.
        const ptr = far.add(a.at + 8, codeSelector(u.cpl));
        const p = put(x86.ljmpAbs(ptr));
        taken(p, a.at, 'FAR');
        break;
      }
    }
  }
  for (let i = 0; i < untaken; i++) put(x86.jnzRel8(0));
  const want = u.instructions ?? n;
  while (n < want) put(x86.nop());
  return { cpl: u.cpl, instructions: n, untaken, branches, start, resume: a.at, unit: u };
}

// ---- the fixed stubs ----

/** What a handler retires between its entry and its IRETQ (at CPL 0), and where the IRETQ is. */
export interface HandlerPath {
  readonly instructions: number;
  readonly untaken: number;
  readonly branches: readonly TakenBranch[];
  readonly iretq: number;
}

export interface Stubs {
  /** Bytes of the stubs page, with one comment row per instruction. */
  readonly placed: readonly Placed[];
  /** The #GP handler's path for a faulting instruction of `len` bytes (2: WRMSR/RDMSR/RDPMC, 4: XSAVES64). */
  gpPath(len: 2 | 4): HandlerPath;
  /** A PMI handler's path for vector `v` (NMI or a fixed vector). */
  pmiPath(v: number): HandlerPath;
  readonly entry: (vector: number) => number;
}

const stub = (o: number) => addr(LAYOUT.stubs + o);
const PMI_COUNT = addr(LAYOUT.pmiCount);
const PMI_VEC = addr(LAYOUT.pmiVec);
const PMI_RIP = addr(LAYOUT.pmiRip);

/** The handler stubs: the SYSCALL landing, #GP (skip the instruction, R14 = 13), the PMI loggers. */
export function buildStubs(): Stubs {
  const placed: Placed[] = [];
  const at = (o: number) => {
    const a = new Asm(stub(o));
    return { a, done: () => placed.push(...a.placed) };
  };

  const l = at(STUB.landing);
  l.a.put(x86.jmpRcx());
  l.done();

  // #GP: look at the faulting instruction's first byte (REX.W: a 4-byte XSAVES64/XRSTORS64,
  // else a 2-byte WRMSR/RDMSR/RDPMC), step RIP over it, report vector 13 in R14.
  const g = at(STUB.gp);
  const gp = {
    push: g.a.put(x86.pushRax()),
    rip: g.a.put(x86.loadRaxRsp(0x10)), // above the saved RAX and the error code
    cmp: g.a.put(x86.cmpbRex48AtRax()),
    jne: g.a.put(x86.jnzRel8(8)), // over the 4-byte path's addq (6) and jmp (2)
    add4: g.a.put(x86.addqRsp(0x10, 4)),
    jmp: g.a.put(x86.jmpRel8(6)), // over the 2-byte path's addq
    add2: g.a.put(x86.addqRsp(0x10, 2)),
    vec: g.a.put(x86.movImm32('r14d', GP_VECTOR)),
    pop: g.a.put(x86.popRax()),
    drop: g.a.put(x86.addRsp(8)), // the error code
    iretq: g.a.put(x86.iretq()),
  };
  g.done();
  if (gp.jne.addr + 2 + 8 !== gp.add2.addr || gp.jmp.addr + 2 + 6 !== gp.vec.addr)
    throw new GuestLayoutError('#GP stub: branch displacements do not match the code');

  // NMI (LVTPC in NMI mode): log vector 2 and the interrupted RIP.
  const nm = at(STUB.nmi);
  const nmiBody = [
    x86.pushRax(),
    x86.pushRcx(),
    x86.loadRcxAbs(PMI_COUNT),
    x86.loadRaxRsp(0x10),
    x86.storeRaxIndexed(PMI_RIP),
    x86.movImm32('eax', NMI_VECTOR),
    x86.storeRaxIndexed(PMI_VEC),
    x86.incqAbs(PMI_COUNT),
    x86.popRcx(),
    x86.popRax(),
  ].map((i) => nm.a.put(i));
  const nmiIret = nm.a.put(x86.iretq());
  nm.done();

  // Fixed vectors 32..255: each entry saves RAX, loads its vector, jumps to the common logger,
  // which also writes the x2APIC EOI.
  const c = at(STUB.irqCommon);
  const common = [
    x86.pushRcx(),
    x86.pushRdx(),
    x86.loadRcxAbs(PMI_COUNT),
    x86.storeRaxIndexed(PMI_VEC),
    x86.loadRaxRsp(0x18), // above RDX, RCX and the entry's RAX
    x86.storeRaxIndexed(PMI_RIP),
    x86.incqAbs(PMI_COUNT),
    x86.xorSelf('eax'),
    x86.xorSelf('edx'),
    x86.movImm32('ecx', X2APIC_EOI),
    x86.wrmsr(),
    x86.popRdx(),
    x86.popRcx(),
    x86.popRax(),
  ].map((i) => c.a.put(i));
  const commonIret = c.a.put(x86.iretq());
  c.done();
  const commonAt = stub(STUB.irqCommon);
  const entryAt = (v: number) => stub(STUB.irqEntries + 16 * (v - 32));
  const entries = new Map<number, { jmp: Placed }>();
  for (let v = 32; v < 256; v++) {
    const e = at(STUB.irqEntries + 16 * (v - 32));
    e.a.put(x86.pushRax());
    e.a.put(x86.movImm32('eax', v));
    const jmp = e.a.put(x86.jmpRel32(commonAt - (e.a.at + 5)));
    entries.set(v, { jmp });
    e.done();
  }

  // Any other vector below 32: report it on the fatal port and stop.
  const fatalAt = (v: number) => stub(STUB.fatal + 8 * v);
  for (let v = 0; v < 32; v++) {
    if (v === NMI_VECTOR || v === GP_VECTOR) continue;
    const f = at(STUB.fatal + 8 * v);
    f.a.put(x86.movAlImm8(v));
    f.a.put(x86.outAl(PORT.fatal));
    f.a.put(x86.jmpRel8(-2));
    f.done();
  }
  if (Math.max(...placed.map((p) => p.addr + p.insn.bytes.length)) > addr(LAYOUT.code))
    throw new GuestLayoutError('stubs overflow their page');

  return {
    placed: placed.sort((x, y) => x.addr - y.addr),
    entry: (v) =>
      v === NMI_VECTOR ? stub(STUB.nmi) : v === GP_VECTOR ? stub(STUB.gp) : v >= 32 ? entryAt(v) : fatalAt(v),
    gpPath(len) {
      // push, mov, cmpb, jne, (4: addq 4, jmp | 2: addq 2), mov r14d, pop, add rsp; then iretq.
      return len === 2
        ? {
            instructions: 8,
            untaken: 0,
            branches: [{ from: gp.jne.addr, to: gp.add2.addr, kind: 'COND' }],
            iretq: gp.iretq.addr,
          }
        : {
            instructions: 9,
            untaken: 1,
            branches: [{ from: gp.jmp.addr, to: gp.vec.addr, kind: 'NEAR_REL_JMP' }],
            iretq: gp.iretq.addr,
          };
    },
    pmiPath(v) {
      if (v === NMI_VECTOR) return { instructions: nmiBody.length, untaken: 0, branches: [], iretq: nmiIret.addr };
      const e = entries.get(v);
      if (e === undefined) throw new GuestLayoutError(`no PMI handler for vector ${v}`);
      return {
        instructions: 3 + common.length,
        untaken: 0,
        branches: [{ from: e.jmp.addr, to: commonAt, kind: 'NEAR_REL_JMP' }],
        iretq: commonIret.addr,
      };
    },
  };
}

// ---- descriptor tables (the values the C code writes) ----

/** The GDT as u64 entries: flat 64-bit code and data per ring, and the 64-bit TSS. */
export function gdtEntries(): bigint[] {
  const tss = BigInt(addr(LAYOUT.tss));
  const code = (dpl: number) => 0x00af9b000000ffffn | (BigInt(dpl) << 45n);
  const data = (dpl: number) => 0x00cf93000000ffffn | (BigInt(dpl) << 45n);
  return [
    0n,
    code(0),
    data(0),
    0x0000890000000067n | ((tss & 0xffffffn) << 16n) | (((tss >> 24n) & 0xffn) << 56n),
    tss >> 32n,
    data(3),
    code(3),
    code(1),
    data(1),
    code(2),
    data(2),
  ];
}

/** An IDT gate: 64-bit interrupt gate, present, DPL 0, kernel CS. */
export function idtGate(handler: number): [bigint, bigint] {
  const h = BigInt(handler);
  return [(h & 0xffffn) | (BigInt(SEL.kernelCs) << 16n) | (0x8en << 40n) | (((h >> 16n) & 0xffffn) << 48n), h >> 32n];
}
