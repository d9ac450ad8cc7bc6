/**
 * Supported configurations: what a design lets a VMM give a guest on a host (KVM_GET_SUPPORTED_CPUID leaf 0xA and the
 * feature MSR PERF_CAPABILITIES, asked of the design as a VMM asks /dev/kvm), whether a guest stays within it, and the
 * guests generation makes inside it (the default) or beyond it (the `beyond-supported` profile).
 */

import fc from 'fast-check';
import { leaf0aEax, leaf0aEdx, LBR_FMT_ARCH, type Profile, perfCaps } from '../model/hw/profile.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT, PERF_CAP_PERF_METRICS } from '../model/hw/msr/capabilities.js';
import { HostKernel } from '../model/host/perf.js';
import { KVM_PMU_CAP_DISABLE, type SupportedPmu } from '../model/kvm/types.js';
import type { GuestConfig, HostKernelFactory, VcpuFactory } from './world.js';

const probed = new WeakMap<VcpuFactory, Map<HostKernelFactory | undefined, Map<Profile, SupportedPmu>>>();

/**
 * What design `factory` (on `hostKernel`, default upstream perf) reports on `host`: a VMM's KVM_GET_SUPPORTED_CPUID
 * and KVM_GET_MSRS on /dev/kvm, asked of a probe vCPU on a host of its own. Throws where the design cannot run there.
 */
export function probeSupportedPmu(host: Profile, factory: VcpuFactory, hostKernel?: HostKernelFactory): SupportedPmu {
  let byKernel = probed.get(factory);
  if (byKernel === undefined)
    probed.set(factory, (byKernel = new Map<HostKernelFactory | undefined, Map<Profile, SupportedPmu>>()));
  let byHost = byKernel.get(hostKernel);
  if (byHost === undefined) byKernel.set(hostKernel, (byHost = new Map<Profile, SupportedPmu>()));
  const known = byHost.get(host);
  if (known !== undefined) return known;
  const kernel = (hostKernel ?? ((o) => new HostKernel(o)))({ profile: host, cpus: 1 });
  const v = factory(kernel, {
    cpu: 0,
    cpuid: { family: host.family, model: host.model, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 }, pdcm: false },
  });
  const s = v.supportedPmu();
  v.destroy();
  byHost.set(host, s);
  return s;
}

/** The fields of CPUID.0AH a VMM sets. */
export function fields(eax: number, edx: number) {
  const version = eax & 0xff;
  return {
    version,
    nGP: (eax >>> 8) & 0xff,
    gpWidth: (eax >>> 16) & 0xff,
    evLen: (eax >>> 24) & 0xff,
    nFixed: version > 1 ? edx & 0x1f : 0,
    fixedWidth: version > 1 ? (edx >>> 5) & 0xff : 0,
  };
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

/**
 * Where guest `g` goes beyond what `s` reports, one phrase per field (empty: a supported configuration). A VMM may
 * always give less: a lower version, fewer or narrower counters, more events marked unavailable.
 */
export function unsupportedBy(s: SupportedPmu, g: GuestConfig): string[] {
  const out: string[] = [];
  const have = fields(s.leaf0a.eax, s.leaf0a.edx);
  const want = fields(g.cpuid.leaf0a.eax, g.cpuid.leaf0a.edx);
  // KVM_PMU_CAP_DISABLE leaves the VM's vCPUs without a vPMU, whatever KVM_GET_SUPPORTED_CPUID (module-wide) says.
  if (g.pmuCap !== undefined && (g.pmuCap & KVM_PMU_CAP_DISABLE) !== 0n && want.version > 0)
    out.push(`CPUID.0AH version ${want.version} on a VM created with KVM_PMU_CAP_DISABLE (its vCPUs have no vPMU)`);
  const over = (what: string, w: number, h: number) => {
    if (w > h) out.push(`${what} ${w} (KVM_GET_SUPPORTED_CPUID: ${h})`);
  };
  over('CPUID.0AH version', want.version, have.version);
  if (want.version > 0) {
    over('CPUID.0AH GP counters', want.nGP, have.nGP);
    over('CPUID.0AH GP counter width', want.gpWidth, have.gpWidth);
    over('CPUID.0AH event mask length', want.evLen, have.evLen);
    over('CPUID.0AH fixed counters', want.nFixed, have.nFixed);
    if (want.nFixed > 0) over('CPUID.0AH fixed counter width', want.fixedWidth, have.fixedWidth);
    const available = s.leaf0a.ebx & ~g.cpuid.leaf0a.ebx & ((1 << Math.min(want.evLen, 31)) - 1);
    if (available !== 0)
      out.push(`CPUID.0AH EBX ${hex(g.cpuid.leaf0a.ebx)} offers events KVM marks unavailable (${hex(s.leaf0a.ebx)})`);
    if ((g.cpuid.leaf0a.ecx & ~s.leaf0a.ecx) !== 0)
      out.push(`CPUID.0AH ECX ${hex(g.cpuid.leaf0a.ecx)} (KVM_GET_SUPPORTED_CPUID: ${hex(s.leaf0a.ecx)})`);
  }
  const caps = g.cpuid.pdcm ? g.perfCapabilities : 0n;
  if ((caps & ~s.perfCapabilities) !== 0n)
    out.push(`PERF_CAPABILITIES ${hex(caps)} (the feature MSR: ${hex(s.perfCapabilities)})`);
  if (g.cpuid.archLbr === true) {
    const l = g.cpuid.leaf1c;
    if (s.archLbr === undefined) out.push('CPUID.(7,0):EDX[19] ARCH_LBR (KVM_GET_SUPPORTED_CPUID: none)');
    else if (
      l === undefined ||
      l.eax !== s.archLbr.eax ||
      (l.ebx & ~s.archLbr.ebx) !== 0 ||
      (l.ecx & ~s.archLbr.ecx) !== 0
    )
      out.push(`CPUID.1CH ${l === undefined ? 'absent' : hex(l.eax)} (KVM_GET_SUPPORTED_CPUID: ${hex(s.archLbr.eax)})`);
  }
  const fmt = caps & PERF_CAP_LBR_FMT;
  if (fmt !== 0n && (g.cpuid.family !== s.lbrModel.family || g.cpuid.model !== s.lbrModel.model))
    out.push(
      `LBR_FMT ${fmt} on family ${g.cpuid.family} model ${hex(g.cpuid.model)} (LBRs only with the host's own, model ${hex(s.lbrModel.model)})`,
    );
  return out;
}

/** How far a generated guest may go: within what the design reports, or beyond it. */
interface Range {
  readonly versions: fc.Arbitrary<number>;
  readonly maxGP: number;
  readonly maxFixed: number;
}

/** A guest CPUID of `range` sized to the host, with what KVM reports of widths, mask length, events and caps. */
function configArb(host: Profile, s: SupportedPmu, range: Range): fc.Arbitrary<GuestConfig> {
  const have = fields(s.leaf0a.eax, s.leaf0a.edx);
  // Only a legacy format a CPU of the host's model has: a VMM handing out anything else (0x3f without CPUID leaf 1CH)
  // configures no CPU at all, which the VMM commands find (decision W4), not the guests made here.
  const offered = Number(s.perfCapabilities & PERF_CAP_LBR_FMT);
  const lbrFmt = offered >= 1 && offered <= 7 && host.legacyLbr !== undefined ? offered : 0;
  const fwWrites = (s.perfCapabilities & PERF_CAP_FW_WRITES) !== 0n;
  // Drawn only where the design offers PERF_METRICS, so that other designs meet the guests they always met.
  const metrics = (s.perfCapabilities & PERF_CAP_PERF_METRICS) !== 0n ? { perfMetrics: fc.boolean() } : {};
  // Likewise Arch LBR (CPUID.(7,0):EDX[19] with KVM's leaf 1CH, LBR_FMT 0x3f behind PDCM) where the design offers it.
  const archLbr = s.archLbr;
  const arch = archLbr !== undefined ? { archLbr: fc.boolean() } : {};
  return fc
    .record({
      ...metrics,
      ...arch,
      version: range.versions,
      nGP: fc.integer({ min: 0, max: range.maxGP }),
      nFixed: fc.integer({ min: 0, max: range.maxFixed }),
      // CPUID.0AH.EBX: mostly all available, else one event or a random set marked unavailable.
      unavailable: fc.oneof(
        { arbitrary: fc.constant(0), weight: 2 },
        { arbitrary: fc.nat(6).map((b) => 1 << b), weight: 1 },
        { arbitrary: fc.nat(0x7f), weight: 2 },
        { arbitrary: fc.constant(0x7f), weight: 1 }, // none of the seven: a VMM hiding the events
      ),
      pdcm: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
      fwWrite: fc.boolean(),
      lbr: fc.boolean(),
    })
    .map((r) => {
      // A topdown guest: PERF_METRICS with FIXED_CTR3 (SLOTS), which no CPU enumerates it without.
      const topdownOf = (x: typeof r) =>
        'perfMetrics' in x && x.perfMetrics === true && x.version > 1 && range.maxFixed > 3;
      const nFixedOf = (x: typeof r) => (topdownOf(x) ? range.maxFixed : x.nFixed);
      const withArch = 'archLbr' in r && r.archLbr === true && archLbr !== undefined;
      return {
        cpuid: {
          family: host.family,
          model: host.model,
          leaf0a: {
            eax: leaf0aEax(r.version, r.nGP, have.gpWidth || host.gpWidth, have.evLen || host.evLen),
            ebx: (r.unavailable | s.leaf0a.ebx) >>> 0, // what KVM marks unavailable stays so
            ecx: 0,
            edx: r.version > 1 ? leaf0aEdx(nFixedOf(r), have.fixedWidth || host.fixedWidth) : 0,
          },
          pdcm: r.pdcm,
          // HLE/RTM as the host has them, as QEMU's -cpu host passes them (no draw: the seeds stay as they were).
          ...(host.tsx ? { tsx: true } : {}),
          ...(withArch ? { archLbr: true, leaf1c: archLbr } : {}),
        },
        perfCapabilities: perfCaps({
          fwWrite: r.fwWrite && fwWrites,
          lbrFmt: withArch ? LBR_FMT_ARCH : r.lbr ? lbrFmt : 0,
          perfMetrics: topdownOf(r),
        }),
      };
    });
}

/** A guest a VMM can configure from what the design reports: versions 1 up to its own, never more counters. */
export function supportedGuestArb(host: Profile, s: SupportedPmu): fc.Arbitrary<GuestConfig> {
  const { version, nGP, nFixed } = fields(s.leaf0a.eax, s.leaf0a.edx);
  // Version 1 on its own weight: no GLOBAL_CTRL and no fixed counters is a case of its own.
  const versions =
    version >= 2
      ? fc.oneof(
          { arbitrary: fc.integer({ min: 2, max: version }), weight: 3 },
          { arbitrary: fc.constant(1), weight: 2 },
        )
      : fc.constant(Math.max(version, 1));
  return configArb(host, s, { versions, maxGP: Math.min(nGP, 8), maxFixed: nFixed });
}

/**
 * A guest beyond what the design reports, as a VMM that ignores KVM_GET_SUPPORTED_CPUID may set it: a PMU version
 * above KVM's (up to 5), and on hosts with more fixed counters than KVM offers, those too.
 */
export function beyondSupportedGuestArb(host: Profile, s: SupportedPmu): fc.Arbitrary<GuestConfig> {
  const { version } = fields(s.leaf0a.eax, s.leaf0a.edx);
  const versions = fc.integer({ min: Math.min(version + 1, 5), max: 5 });
  return configArb(host, s, { versions, maxGP: Math.min(host.nGP, 8), maxFixed: Math.min(host.nFixedContig, 4) });
}

/** What a property run needs to know of its design's supported configuration. */
export interface SupportedRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
  /** What the design reports on the host (probed from the design when not given). */
  readonly supported?: SupportedPmu | undefined;
}

/** The design's supported configuration on the run's host: given, or asked of the design. */
export function supportedOf(r: SupportedRun): SupportedPmu {
  return r.supported ?? probeSupportedPmu(r.host, r.design, r.hostKernel);
}
