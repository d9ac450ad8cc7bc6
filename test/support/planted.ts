import type { VcpuFactory } from '../../scenarios/world.js';

/** A planted fault: `design` with the value of a guest RDMSR of `msr` changed by `f` (the access still succeeds). */
export function withGuestRead(design: VcpuFactory, msr: number, f: (v: bigint) => bigint): VcpuFactory {
  return (h, o) => {
    const v = design(h, o);
    const rd = v.guestRdmsr.bind(v);
    v.guestRdmsr = (m) => {
      const r = rd(m);
      return r.ok && m === msr ? { ok: true, value: f(r.value) } : r;
    };
    return v;
  };
}
