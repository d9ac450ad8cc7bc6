import type { GuestConfig } from './world.js';

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** The guest configuration as TypeScript, for reports and regression files. */
export function guestToCode(g: GuestConfig): string {
  const r = g.cpuid.leaf0a;
  const l1c = g.cpuid.leaf1c;
  const tsx =
    (g.cpuid.tsx !== undefined ? `, tsx: ${g.cpuid.tsx}` : '') +
    (g.cpuid.archLbr !== undefined ? `, archLbr: ${g.cpuid.archLbr}` : '') +
    (l1c !== undefined
      ? `, leaf1c: { eax: ${hex(l1c.eax)}, ebx: ${hex(l1c.ebx)}, ecx: ${hex(l1c.ecx)}, edx: ${hex(l1c.edx)} }`
      : '');
  return (
    `{ cpuid: { family: ${g.cpuid.family}, model: ${hex(g.cpuid.model)}, ` +
    `leaf0a: { eax: ${hex(r.eax)}, ebx: ${hex(r.ebx)}, ecx: ${hex(r.ecx)}, edx: ${hex(r.edx)} }, ` +
    `pdcm: ${g.cpuid.pdcm}${tsx} }, perfCapabilities: ${hex(g.perfCapabilities)}n` +
    `${g.pmuCap !== undefined ? `, pmuCap: ${hex(g.pmuCap)}n` : ''} }`
  );
}
