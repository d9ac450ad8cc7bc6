/**
 * The guest-code encoder against vectors written from the SDM and checked with binutils when they
 * were written (x86_vectors.tsv; scripts/x86_vectors_check.sh re-checks them): every form's bytes
 * and its GNU as source. Where GNU as is installed, the encoder's source text is also assembled
 * and must give the encoder's bytes; CI needs no binutils for the rest.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as x86 from '../../../reports/emit/x86.js';

const VECTORS = new Map(
  readFileSync(new URL('x86_vectors.tsv', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [name, asm, bytes] = l.split('\t') as [string, string, string];
      return [name, { asm, bytes: bytes.split(' ').map((b) => parseInt(b, 16)) }];
    }),
);

/** Each vector's name and the encoder call that must produce it. */
const CALLS: Record<string, () => x86.Insn> = {
  wrmsr: x86.wrmsr,
  rdmsr: x86.rdmsr,
  rdpmc: x86.rdpmc,
  nop: x86.nop,
  ret: x86.ret,
  iretq: x86.iretq,
  syscall: x86.syscall,
  sysretq: x86.sysretq,
  xsaves64_rdi: x86.xsaves64Rdi,
  xrstors64_rdi: x86.xrstors64Rdi,
  xsetbv: x86.xsetbv,
  push_rax: x86.pushRax,
  push_rcx: x86.pushRcx,
  push_rdx: x86.pushRdx,
  pop_rax: x86.popRax,
  pop_rcx: x86.popRcx,
  pop_rdx: x86.popRdx,
  jmp_rax: x86.jmpRax,
  jmp_rcx: x86.jmpRcx,
  call_rax: x86.callRax,
  mov_rsp_rax: x86.movRspToRax,
  shl_rdx_32: x86.shlRdx32,
  or_rdx_rax: x86.orRdxRax,
  cmpb_48_rax: x86.cmpbRex48AtRax,
  test_r14d: x86.testR14d,
  xor_eax: () => x86.xorSelf('eax'),
  xor_edx: () => x86.xorSelf('edx'),
  xor_r14d: () => x86.xorSelf('r14d'),
  mov_eax_imm32: () => x86.movImm32('eax', 0x12345678),
  mov_ecx_imm32: () => x86.movImm32('ecx', 0x38f),
  mov_edx_imm32: () => x86.movImm32('edx', 0xffffffff),
  mov_ebx_imm32: () => x86.movImm32('ebx', 1),
  mov_esi_imm32: () => x86.movImm32('esi', 1),
  mov_edi_imm32: () => x86.movImm32('edi', 0x40120000),
  mov_r11d_imm32: () => x86.movImm32('r11d', 2),
  mov_r14d_imm32: () => x86.movImm32('r14d', 13),
  mov_al_imm8: () => x86.movAlImm8(13),
  push_imm8: () => x86.pushImm8(2),
  push_imm32: () => x86.pushImm32(0x40010020),
  movabs_rax: () => x86.movabsRax(0x1122334455667788n),
  out_eax: () => x86.outEax(0x10),
  out_al: () => x86.outAl(0x12),
  store_rax: () => x86.storeAbs('rax', 0x40100000),
  store_rdx: () => x86.storeAbs('rdx', 0x40100008),
  store_r14: () => x86.storeAbs('r14', 0x40100008),
  load_rcx: () => x86.loadRcxAbs(0x40110000),
  store_rax_indexed: () => x86.storeRaxIndexed(0x40110008),
  incq_abs: () => x86.incqAbs(0x40110000),
  load_rax_rsp16: () => x86.loadRaxRsp(0x10),
  load_rax_rsp8: () => x86.loadRaxRsp(8),
  addq_rsp16_4: () => x86.addqRsp(0x10, 4),
  addq_rsp8_2: () => x86.addqRsp(8, 2),
  add_rsp_8: () => x86.addRsp(8),
  lea_rsp_8: x86.leaRspPlus8,
  lea_rax_rip: () => x86.leaRip('rax', 2),
  lea_rcx_rip: () => x86.leaRip('rcx', 9),
  lea_rax_rip_neg: () => x86.leaRip('rax', -16),
  ljmp_abs: () => x86.ljmpAbs(0x40130000),
  jmp_rel8_0: () => x86.jmpRel8(0),
  jmp_rel8_self: () => x86.jmpRel8(-2),
  jmp_rel8_fwd: () => x86.jmpRel8(6),
  jz_rel8_0: () => x86.jzRel8(0),
  jnz_rel8_0: () => x86.jnzRel8(0),
  jnz_rel8_fwd: () => x86.jnzRel8(8),
  jmp_rel32_0: () => x86.jmpRel32(0),
  jmp_rel32_back: () => x86.jmpRel32(-261),
  call_rel32_0: () => x86.callRel32(0),
  dec_ecx: x86.decEcx,
  jnz_rel32_back: () => x86.jnzRel32(-1006),
};

const hexBytes = (b: readonly number[]) => b.map((x) => x.toString(16).padStart(2, '0')).join(' ');

describe('x86 encoder against the SDM vectors', () => {
  it('has a call for every vector and a vector for every call', () => {
    expect([...VECTORS.keys()].sort()).toEqual(Object.keys(CALLS).sort());
  });

  for (const [name, call] of Object.entries(CALLS))
    it(`${name}: bytes and GNU as source`, () => {
      const v = VECTORS.get(name)!;
      const got = call();
      expect(hexBytes(got.bytes)).toBe(hexBytes(v.bytes));
      expect(got.asm).toBe(v.asm);
    });

  it('refuses what a fixed form cannot hold, rather than picking another encoding', () => {
    expect(() => x86.jmpRel8(128)).toThrow(x86.EncodeError);
    expect(() => x86.jzRel8(-129)).toThrow(/signed byte/);
    expect(() => x86.storeAbs('rax', 0x8000_0000)).toThrow(/below 2 GiB/);
    expect(() => x86.movImm32('ecx', 2 ** 32)).toThrow(/32 bits/);
    expect(() => x86.pushImm8(0x80)).toThrow(x86.EncodeError);
    expect(() => x86.pushImm32(0x7f)).toThrow(x86.EncodeError);
    expect(() => x86.outEax(0x100)).toThrow(/8 bits/);
  });

  it('measures sequences by their bytes', () => {
    // The SYSRET landing offset: lea's displacement spans mov r11d and sysretq.
    expect(x86.lengthOf([x86.movImm32('r11d', 2), x86.sysretq()])).toBe(9);
  });
});

const hasAs = (() => {
  try {
    execFileSync('as', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.runIf(hasAs)('x86 encoder against GNU as (where binutils is installed)', () => {
  it('assembles every form the encoder prints to the bytes it emits', () => {
    const dir = mkdtempSync(join(tmpdir(), 'x86enc-'));
    try {
      const forms = Object.values(CALLS).map((c) => c());
      // One line each, with a label between, so a length difference shows in the right place.
      writeFileSync(join(dir, 'x.s'), `.text\n${forms.map((f) => f.asm).join('\n')}\n`);
      execFileSync('as', ['--64', '-o', join(dir, 'x.o'), join(dir, 'x.s')]);
      execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'x.o'), join(dir, 'x.bin')]);
      const got = [...readFileSync(join(dir, 'x.bin'))];
      expect(hexBytes(got)).toBe(hexBytes(forms.flatMap((f) => f.bytes)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
