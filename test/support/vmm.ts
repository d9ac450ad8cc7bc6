import type { ConformanceRun } from '../../properties/conformance.js';
import { runVmmProgram } from '../../properties/vmm_conformance.js';
import { Divergence, type WorldCommand } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import type { VpmuVcpu } from '../../model/kvm/types.js';

/** The VMM property's verdict on a program: the declarations met, or the divergence it reports. */
export function vmmVerdict(
  r: Omit<ConformanceRun, 'known' | 'ended'>,
  guest: GuestConfig,
  program: readonly WorldCommand[],
): { readonly met?: readonly string[]; readonly reported?: string } {
  const known = new Map<string, number>();
  try {
    runVmmProgram({ ...r, known }, guest, program);
  } catch (e) {
    if (e instanceof Divergence) return { reported: e.message };
    throw e;
  }
  return { met: [...known.keys()] };
}

/** A planted fault over a design's vCPU class: KVM_GET_MSRS of `msr` answers `f` of what KVM read. */
export function hostGetMsrAs(
  Base: new (...a: Parameters<VcpuFactory>) => VpmuVcpu,
  msr: number,
  f: (value: bigint) => bigint,
): VcpuFactory {
  return (h, o) =>
    new (class extends Base {
      override hostGetMsr(m: number) {
        const r = super.hostGetMsr(m);
        return m === msr && r.ok ? { ok: true as const, value: f(r.value) } : r;
      }
    })(h, o);
}
