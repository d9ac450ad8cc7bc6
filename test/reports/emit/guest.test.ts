/**
 * The guest image: the handler paths the model retires are the stubs' instructions, the stubs the
 * C builds with loops are where the model puts them, and a work unit becomes exactly its
 * instructions and taken branches (or says how many more it needs).
 */
import { describe, expect, it } from 'vitest';
import {
  addr,
  Asm,
  buildStubs,
  emitUnit,
  enterCpl,
  FarPointers,
  GP_VECTOR,
  LAYOUT,
  leaveCpl,
  NMI_VECTOR,
  STUB,
} from '../../../reports/emit/guest.js';
import { BRANCH_KINDS } from '../../../model/hw/state.js';
import type { WorkUnit } from '../../../model/hw/work.js';

const stubs = buildStubs();
const at = (a: number) => stubs.placed.find((p) => p.addr === a);

describe('the handler stubs', () => {
  it('put each vector where the IDT (built by the C) points', () => {
    expect(stubs.entry(NMI_VECTOR)).toBe(addr(LAYOUT.stubs + STUB.nmi));
    expect(stubs.entry(GP_VECTOR)).toBe(addr(LAYOUT.stubs + STUB.gp));
    // The C writes entry v at STUB_IRQ_ENTRIES + 16 (v - 32): push %rax; mov $v,%eax; jmp common.
    for (const v of [32, 0xfe, 255]) {
      const e = stubs.entry(v);
      expect(e).toBe(addr(LAYOUT.stubs + STUB.irqEntries + 16 * (v - 32)));
      expect(at(e)?.insn.asm).toBe('push %rax');
      expect(at(e + 1)?.insn.bytes).toEqual([0xb8, v, 0, 0, 0]);
      const rel = addr(LAYOUT.stubs + STUB.irqCommon) - (e + 11);
      expect(at(e + 6)?.insn.bytes.slice(1)).toEqual([
        rel & 0xff,
        (rel >> 8) & 0xff,
        (rel >> 16) & 0xff,
        (rel >>> 24) & 0xff,
      ]);
    }
    // Other vectors below 32: mov $v,%al; out %al,$FATAL; jmp .
    expect(at(stubs.entry(6))?.insn.bytes).toEqual([0xb0, 6]);
  });

  it('#GP: the 2-byte path takes the JNE over the 4-byte one, both land on the same tail', () => {
    const p2 = stubs.gpPath(2);
    const p4 = stubs.gpPath(4);
    const gp = stubs.placed.filter((p) => p.addr >= stubs.entry(GP_VECTOR) && p.addr <= p2.iretq);
    expect(gp.map((p) => p.insn.asm)).toEqual([
      'push %rax',
      'mov 0x10(%rsp),%rax',
      'cmpb $0x48,(%rax)',
      'jnz .+10',
      'addq $0x4,0x10(%rsp)',
      'jmp .+8',
      'addq $0x2,0x10(%rsp)',
      'mov $0xd,%r14d',
      'pop %rax',
      'add $0x8,%rsp',
      'iretq',
    ]);
    // Retired before the IRETQ: 8 on the 2-byte path (JNE taken), 9 on the 4-byte path (JNE not, JMP taken).
    expect([p2.instructions, p2.untaken, p2.branches.map((b) => b.kind)]).toEqual([8, 0, ['COND']]);
    expect([p4.instructions, p4.untaken, p4.branches.map((b) => b.kind)]).toEqual([9, 1, ['NEAR_REL_JMP']]);
    expect(at(p2.branches[0]!.to)?.insn.asm).toBe('addq $0x2,0x10(%rsp)');
    expect(at(p4.branches[0]!.to)?.insn.asm).toBe('mov $0xd,%r14d');
  });

  it('PMI handlers retire what their stubs hold before the IRETQ', () => {
    const nmi = stubs.pmiPath(NMI_VECTOR);
    const body = stubs.placed.filter((p) => p.addr >= stubs.entry(NMI_VECTOR) && p.addr < nmi.iretq);
    expect(body).toHaveLength(nmi.instructions);
    const irq = stubs.pmiPath(0xfe);
    const common = stubs.placed.filter((p) => p.addr >= addr(LAYOUT.stubs + STUB.irqCommon) && p.addr < irq.iretq);
    expect(irq.instructions).toBe(3 + common.length);
    expect(common.map((p) => p.insn.asm)).toContain('wrmsr'); // the x2APIC EOI
  });
});

const unit = (u: Partial<WorkUnit>): WorkUnit => ({ cpl: 0, ...u });

describe('a work unit in the guest', () => {
  it('retires exactly its instructions and taken branches, each branch to the next instruction', () => {
    const a = new Asm(addr(LAYOUT.code));
    const far = new FarPointers();
    const branches = BRANCH_KINDS.map((kind) => ({ from: 0x401000n, to: 0x401040n, kind }));
    const p = emitUnit(a, unit({ cpl: 3, instructions: 20, untakenBranches: 2, branches }), far);
    expect(p.instructions).toBe(20);
    expect(a.placed).toHaveLength(20);
    expect(p.untaken).toBe(2);
    expect(p.branches.map((b) => b.kind)).toEqual([...BRANCH_KINDS]);
    for (const b of p.branches) {
      const i = a.placed.findIndex((x) => x.addr === b.from);
      expect(i, `${b.kind} is an emitted instruction`).toBeGreaterThanOrEqual(0);
      expect(b.to).toBe(b.from + a.placed[i]!.insn.bytes.length); // taken, to the next byte
    }
    expect(far.entries).toEqual([{ offset: p.branches.at(-1)!.to, selector: 0x33 }]);
  });

  it('needs room for its helpers, and says so by retiring more', () => {
    const a = new Asm(addr(LAYOUT.code));
    const p = emitUnit(
      a,
      unit({ instructions: 1, branches: [{ from: 0x401000n, to: 0x401040n, kind: 'NEAR_IND_CALL' }] }),
      new FarPointers(),
    );
    expect(p.instructions).toBe(3); // lea, call, lea (drop the return address)
  });

  it('crosses rings with SYSRET/IRETQ up and SYSCALL back, the crossing itself on either side', () => {
    for (const cpl of [1, 2, 3]) {
      const a = new Asm(addr(LAYOUT.code));
      const up = enterCpl(a, cpl);
      const down = leaveCpl(a, cpl);
      expect(up.at(-1)?.crossing).toEqual({ from: 0, to: cpl });
      expect(up.at(-1)?.cpl).toBeNull();
      expect(down[0]?.crossing).toEqual({ from: cpl, to: 0 });
      expect(down[1]?.branches[0]?.from).toBe(addr(LAYOUT.stubs + STUB.landing));
      expect(down[1]?.branches[0]?.to).toBe(a.at);
    }
  });
});
