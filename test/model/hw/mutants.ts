/**
 * Model mutants: each plants one mistake a law guards against. They are subclasses of the
 * faithful Cpu, never flags in the model.
 */
import { type Access } from '../../../model/hw/access.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_ARCH_LBR_DEPTH, type ArchLbrXsave } from '../../../model/hw/msr/lbr_arch.js';
import { type Profile } from '../../../model/hw/profile.js';
import { type WorkUnit } from '../../../model/hw/work.js';
import type { CpuFactory } from '../../../properties/hw_laws.js';
import { MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';
import { MSR_PERF_METRICS } from '../../../model/hw/msr/topdown.js';

/** IA32_PERFEVTSELx loses USR (bit 16) on write. */
class DropsEvtselUsr extends Cpu {
  override wrmsr(a: number, v: bigint): Access {
    const r = super.wrmsr(a, v);
    const i = a - MSR_P6_EVNTSEL0;
    if (i >= 0 && i < this.profile.nGP && r.ok) this.state.evtsel[i] = v & ~(1n << 16n);
    return r;
  }
}

/** Loses one instruction of every unit that retires two or more. */
class LosesInstructions extends Cpu {
  override step(u: WorkUnit) {
    const n = u.instructions ?? 0;
    return super.step(n >= 2 ? { ...u, instructions: n - 1 } : u);
  }
}

/** Ignores CTR_FRZ while counting. */
class IgnoresCtrFrz extends Cpu {
  override step(u: WorkUnit) {
    const frz = this.state.globalStatus & (1n << 59n);
    this.state.globalStatus &= ~frz;
    this.state.configEpoch++;
    try {
      return super.step(u);
    } finally {
      this.state.globalStatus |= frz;
      this.state.configEpoch++;
    }
  }
}

/** Records a branch into the LBRs only every other time (a lost record). */
class LosesLbrRecords extends Cpu {
  private n = 0;
  override step(u: WorkUnit) {
    const brs = (u.branches ?? []).filter(() => this.n++ % 2 === 0);
    return super.step({ ...u, branches: brs, instructions: u.instructions ?? 0 });
  }
}

/** An IA32_LBR_DEPTH write keeps the old records. */
class DepthKeepsRecords extends Cpu {
  override wrmsr(a: number, v: bigint): Access {
    if (a !== MSR_ARCH_LBR_DEPTH) return super.wrmsr(a, v);
    const keep = [[...this.state.alFrom], [...this.state.alTo], [...this.state.alInfo]] as const;
    const r = super.wrmsr(a, v);
    keep[0].forEach((x, i) => {
      this.state.alFrom[i] = x;
      this.state.alTo[i] = keep[1][i]!;
      this.state.alInfo[i] = keep[2][i]!;
    });
    return r;
  }
}

/** XRSTORS leaves IA32_LBR_CTL as it was. */
class XrstorsSkipsCtl extends Cpu {
  override xrstors(area: ArchLbrXsave): Access {
    const ctl = this.state.lbrCtl;
    const r = super.xrstors(area);
    this.state.lbrCtl = ctl;
    return r;
  }
}

/** PERF_METRICS reads with Retiring and Bad Speculation swapped. */
class SwapsMetrics extends Cpu {
  override rdmsr(a: number): Access {
    const r = super.rdmsr(a);
    if (a !== MSR_PERF_METRICS || !r.ok) return r;
    const b0 = r.value & 0xffn;
    const b1 = (r.value >> 8n) & 0xffn;
    return { ok: true, value: (r.value & ~0xffffn) | (b0 << 8n) | b1 };
  }
}

export const MUTANTS: Record<string, { what: string; make: CpuFactory }> = {
  readback: { what: 'EVTSELx drops USR', make: (p: Profile) => new DropsEvtselUsr(p) },
  'overflow-at-k': { what: 'loses instructions', make: (p) => new LosesInstructions(p) },
  frozen: { what: 'ignores CTR_FRZ', make: (p) => new IgnoresCtrFrz(p) },
  'lbr-last-depth': { what: 'loses LBR records', make: (p) => new LosesLbrRecords(p) },
  'arch-depth-clears': { what: 'DEPTH write keeps records', make: (p) => new DepthKeepsRecords(p) },
  'xsaves-xrstors': { what: 'XRSTORS skips LBR_CTL', make: (p) => new XrstorsSkipsCtl(p) },
  'perf-metrics': { what: 'PERF_METRICS bytes swapped', make: (p) => new SwapsMetrics(p) },
};
