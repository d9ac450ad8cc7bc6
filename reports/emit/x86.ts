/**
 * A tiny x86-64 encoder for the guest code of the reproducers: only fixed-length forms (never the
 * shortest encoding an assembler would pick), because instruction lengths decide branch
 * addresses, the exception handlers' skip lengths and the LBR values the reproducers predict.
 * Each function returns the bytes and the GNU as source that assembles to exactly those bytes
 * (test/reports/emit/x86_vectors.tsv holds one vector per form, checked with binutils when it was
 * written). A relative displacement counts from the end of the instruction.
 */

export interface Insn {
  readonly bytes: readonly number[];
  /** GNU as (AT&T) source that assembles to `bytes`. */
  readonly asm: string;
}

export class EncodeError extends RangeError {
  override readonly name = 'EncodeError';
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

function u8(v: number, what: string): number[] {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new EncodeError(`${what} ${v} does not fit in 8 bits`);
  return [v];
}

function u32(v: number, what: string): number[] {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new EncodeError(`${what} ${v} does not fit in 32 bits`);
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

function s8(v: number, what: string): number[] {
  if (!Number.isInteger(v) || v < -128 || v > 127) throw new EncodeError(`${what} ${v} does not fit in a signed byte`);
  return [v & 0xff];
}

function s32(v: number, what: string): number[] {
  if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff)
    throw new EncodeError(`${what} ${v} does not fit in a signed 32-bit displacement`);
  return u32(v >>> 0, what);
}

function u64(v: bigint): number[] {
  const b = BigInt.asUintN(64, v);
  return Array.from({ length: 8 }, (_, i) => Number((b >> BigInt(8 * i)) & 0xffn));
}

/** An absolute address as [disp32] with no base and no index (SIB 0x25): sign-extended, so below 2 GiB. */
function abs32(addr: number): number[] {
  if (!Number.isInteger(addr) || addr < 0 || addr > 0x7fff_ffff)
    throw new EncodeError(`absolute address ${hex(addr)} is not below 2 GiB`);
  return u32(addr, 'address');
}

const insn = (bytes: number[], asm: string): Insn => ({ bytes, asm });

/** The 32-bit registers the code uses, by their number in ModRM/opcode. */
export const REG32 = {
  eax: 0,
  ecx: 1,
  edx: 2,
  ebx: 3,
  esi: 6,
  edi: 7,
  r11d: 11,
  r14d: 14,
} as const;
export type Reg32 = keyof typeof REG32;

// ---- no operands ----

export const wrmsr = (): Insn => insn([0x0f, 0x30], 'wrmsr');
export const rdmsr = (): Insn => insn([0x0f, 0x32], 'rdmsr');
export const rdpmc = (): Insn => insn([0x0f, 0x33], 'rdpmc');
export const nop = (): Insn => insn([0x90], 'nop');
export const ret = (): Insn => insn([0xc3], 'ret');
export const iretq = (): Insn => insn([0x48, 0xcf], 'iretq');
export const syscall = (): Insn => insn([0x0f, 0x05], 'syscall');
export const sysretq = (): Insn => insn([0x48, 0x0f, 0x07], 'sysretq');
export const xsaves64Rdi = (): Insn => insn([0x48, 0x0f, 0xc7, 0x2f], 'xsaves64 (%rdi)');
export const xrstors64Rdi = (): Insn => insn([0x48, 0x0f, 0xc7, 0x1f], 'xrstors64 (%rdi)');
export const xsetbv = (): Insn => insn([0x0f, 0x01, 0xd1], 'xsetbv');
export const pushRax = (): Insn => insn([0x50], 'push %rax');
export const pushRcx = (): Insn => insn([0x51], 'push %rcx');
export const pushRdx = (): Insn => insn([0x52], 'push %rdx');
export const popRax = (): Insn => insn([0x58], 'pop %rax');
export const popRcx = (): Insn => insn([0x59], 'pop %rcx');
export const popRdx = (): Insn => insn([0x5a], 'pop %rdx');
export const jmpRax = (): Insn => insn([0xff, 0xe0], 'jmp *%rax');
export const jmpRcx = (): Insn => insn([0xff, 0xe1], 'jmp *%rcx');
export const callRax = (): Insn => insn([0xff, 0xd0], 'call *%rax');
export const movRspToRax = (): Insn => insn([0x48, 0x89, 0xe0], 'mov %rsp,%rax');
/** shl $32,%rdx */
export const shlRdx32 = (): Insn => insn([0x48, 0xc1, 0xe2, 0x20], 'shl $0x20,%rdx');
/** or %rdx,%rax: with shlRdx32, folds EDX:EAX into RAX. */
export const orRdxRax = (): Insn => insn([0x48, 0x09, 0xd0], 'or %rdx,%rax');
/** cmpb $0x48,(%rax): is the instruction at RAX REX.W-prefixed (4 bytes here) or not (2 bytes)? */
export const cmpbRex48AtRax = (): Insn => insn([0x80, 0x38, 0x48], 'cmpb $0x48,(%rax)');
/** dec %ecx */
export const decEcx = (): Insn => insn([0xff, 0xc9], 'dec %ecx');
/** test %r14d,%r14d */
export const testR14d = (): Insn => insn([0x45, 0x85, 0xf6], 'test %r14d,%r14d');

/** xor %r,%r (32-bit): zeroes the 64-bit register; eax and edx and r14d only. */
export function xorSelf(r: 'eax' | 'edx' | 'r14d'): Insn {
  if (r === 'eax') return insn([0x31, 0xc0], 'xor %eax,%eax');
  if (r === 'edx') return insn([0x31, 0xd2], 'xor %edx,%edx');
  return insn([0x45, 0x31, 0xf6], 'xor %r14d,%r14d');
}

// ---- immediates ----

/** mov $imm32,%r32 (B8+r, REX.B for r8d..r15d): zero-extends into the 64-bit register. */
export function movImm32(r: Reg32, imm: number): Insn {
  const n = REG32[r];
  const op = n >= 8 ? [0x41, 0xb8 + n - 8] : [0xb8 + n];
  return insn([...op, ...u32(imm, 'immediate')], `mov $${hex(imm)},%${r}`);
}

/** mov $imm8,%al */
export const movAlImm8 = (imm: number): Insn => insn([0xb0, ...u8(imm, 'immediate')], `mov $${hex(imm)},%al`);

/** push $imm8 (sign-extended; 0..0x7f only, so the value pushed is the one written). */
export function pushImm8(imm: number): Insn {
  if (!Number.isInteger(imm) || imm < 0 || imm > 0x7f) throw new EncodeError(`push immediate ${imm} is not 0..0x7f`);
  return insn([0x6a, imm], `push $${hex(imm)}`);
}

/** push $imm32 (68 id, sign-extended to 64 bits): 0x80..0x7fffffff, where GNU as also picks this form. */
export function pushImm32(imm: number): Insn {
  if (!Number.isInteger(imm) || imm < 0x80 || imm > 0x7fff_ffff)
    throw new EncodeError(`push immediate ${hex(imm)} is not 0x80..0x7fffffff`);
  return insn([0x68, ...u32(imm, 'immediate')], `push $${hex(imm)}`);
}

/** movabs $imm64,%rax */
export const movabsRax = (imm: bigint): Insn => insn([0x48, 0xb8, ...u64(imm)], `movabs $${hex(imm)},%rax`);

// ---- port I/O ----

/** out %eax,$port */
export const outEax = (port: number): Insn => insn([0xe7, ...u8(port, 'port')], `out %eax,$${hex(port)}`);
/** out %al,$port */
export const outAl = (port: number): Insn => insn([0xe6, ...u8(port, 'port')], `out %al,$${hex(port)}`);

// ---- memory ----

/** mov %rax|%rdx|%r14,<abs32> */
export function storeAbs(r: 'rax' | 'rdx' | 'r14', addr: number): Insn {
  const op = r === 'rax' ? [0x48, 0x89, 0x04] : r === 'rdx' ? [0x48, 0x89, 0x14] : [0x4c, 0x89, 0x34];
  return insn([...op, 0x25, ...abs32(addr)], `mov %${r},${hex(addr)}`);
}

/** mov <abs32>,%rcx */
export const loadRcxAbs = (addr: number): Insn =>
  insn([0x48, 0x8b, 0x0c, 0x25, ...abs32(addr)], `mov ${hex(addr)},%rcx`);

/** mov %rax,<base>(,%rcx,8): the RCX-th quadword of a table at `base`. */
export const storeRaxIndexed = (base: number): Insn =>
  insn([0x48, 0x89, 0x04, 0xcd, ...abs32(base)], `mov %rax,${hex(base)}(,%rcx,8)`);

/** incq <abs32> */
export const incqAbs = (addr: number): Insn => insn([0x48, 0xff, 0x04, 0x25, ...abs32(addr)], `incq ${hex(addr)}`);

/** mov <disp8>(%rsp),%rax */
export function loadRaxRsp(disp: number): Insn {
  return insn([0x48, 0x8b, 0x44, 0x24, ...s8(disp, 'displacement')], `mov ${hex(disp)}(%rsp),%rax`);
}

/** addq $imm8,<disp8>(%rsp) */
export function addqRsp(disp: number, imm: number): Insn {
  return insn(
    [0x48, 0x83, 0x44, 0x24, ...s8(disp, 'displacement'), ...s8(imm, 'immediate')],
    `addq $${hex(imm)},${hex(disp)}(%rsp)`,
  );
}

/** add $imm8,%rsp */
export const addRsp = (imm: number): Insn => insn([0x48, 0x83, 0xc4, ...s8(imm, 'immediate')], `add $${hex(imm)},%rsp`);

/** lea 0x8(%rsp),%rsp: drops a return address without touching the flags. */
export const leaRspPlus8 = (): Insn => insn([0x48, 0x8d, 0x64, 0x24, 0x08], 'lea 0x8(%rsp),%rsp');

/** lea <disp32>(%rip),%rax|%rcx */
export function leaRip(r: 'rax' | 'rcx', disp: number): Insn {
  return insn(
    [0x48, 0x8d, r === 'rax' ? 0x05 : 0x0d, ...s32(disp, 'displacement')],
    `lea ${disp < 0 ? `-${hex(-disp)}` : hex(disp)}(%rip),%${r}`,
  );
}

/** rex.W ljmp *<abs32>: a far jump through a m16:64 pointer (offset, then selector) in memory. */
export const ljmpAbs = (addr: number): Insn =>
  insn([0x48, 0xff, 0x2c, 0x25, ...abs32(addr)], `rex64 ljmp *${hex(addr)}`);

// ---- relative branches (rel counts from the end of the instruction; asm uses `.`, the start) ----

const dot = (n: number) => (n > 0 ? `.+${n}` : n < 0 ? `.-${-n}` : `.`);

export const jmpRel8 = (rel: number): Insn => insn([0xeb, ...s8(rel, 'rel8')], `jmp ${dot(rel + 2)}`);
export const jzRel8 = (rel: number): Insn => insn([0x74, ...s8(rel, 'rel8')], `jz ${dot(rel + 2)}`);
export const jnzRel8 = (rel: number): Insn => insn([0x75, ...s8(rel, 'rel8')], `jnz ${dot(rel + 2)}`);
export const jmpRel32 = (rel: number): Insn => insn([0xe9, ...s32(rel, 'rel32')], `{disp32} jmp ${dot(rel + 5)}`);
export const jnzRel32 = (rel: number): Insn => insn([0x0f, 0x85, ...s32(rel, 'rel32')], `{disp32} jnz ${dot(rel + 6)}`);
export const callRel32 = (rel: number): Insn => insn([0xe8, ...s32(rel, 'rel32')], `call ${dot(rel + 5)}`);

/** The length of a sequence of instructions. */
export const lengthOf = (xs: readonly Insn[]): number => xs.reduce((n, x) => n + x.bytes.length, 0);
