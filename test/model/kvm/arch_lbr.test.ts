/**
 * Guest Arch LBR as the v2 series builds it (model/kvm/series/arch_lbr.ts), and the four tests Sean Christopherson
 * asked of it in his review (seed 004: "selftests showing that this stuff actually works, that save/restore
 * (migration) works, that the MSRs can/can't be accessed when guest CPUID is (in)correctly configured", and "tests that
 * force contention between host and guests ... to make sure that KVM isn't leaking host state"), each declared
 * divergence met by a program, and a planted fault found by the conformance property.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../../model/hw/profiles.js';
import { type CpuidRegs, LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, perfCaps } from '../../../model/hw/profile.js';
import { bit } from '../../../model/hw/bits.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import {
  type ArchLbrXsave,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../../model/hw/msr/lbr_arch.js';
import { LBR_INFO_CYC_CNT, MSR_LBR_SELECT, MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { MSR_IA32_XSS, XFEATURE_LBR } from '../../../model/hw/msr/system.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import type { KvmVcpuState } from '../../../model/kvm/emulated/state.js';
import { ARCH_LBR_OPS, type ArchLbrVcpu } from '../../../model/kvm/series/arch_lbr.js';
import { designById, emulatedWith } from '../../../designs/registry.js';
import { CONFORMANCE_CPUS, conformanceProperty, runProgram } from '../../../properties/conformance.js';
import { lbrFreezeProperty } from '../../../properties/lbr_freeze.js';
import { ARCH_LBR_DECLARED, ARCH_LBR_EXPECTATIONS } from '../../../properties/expectations/arch_lbr.js';
import {
  Divergence,
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
  GuestXrstors,
  GuestXsaves,
  Migrate,
  SaveRestore,
  type WorldCommand,
} from '../../../scenarios/commands.js';
import { VmmGetMsr, VmmSetCpuid, VmmSetMsr } from '../../../scenarios/vmm.js';
import { type GuestConfig, impossibleEnumeration, World } from '../../../scenarios/world.js';
import type { Observation } from '../../../scenarios/observation.js';

const h = SAPPHIRE_RAPIDS;
const design = designById('arch-lbr');
/** KVM_GET_SUPPORTED_CPUID's leaf 0x1C: the host's deepest depth (32) only. */
const leaf1c: CpuidRegs = design.supported(h).archLbr!;

/** A v2 guest with Arch LBR as KVM reports it. */
const guest: GuestConfig = {
  cpuid: {
    family: h.family,
    model: h.model,
    leaf0a: { eax: leaf0aEax(2, 8, h.gpWidth, h.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(3, h.fixedWidth) },
    pdcm: true,
    archLbr: true,
    leaf1c,
  },
  perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: LBR_FMT_ARCH }),
};

/** Everything recorded: LBREn, CPL 0 and 3, every branch type. */
const CAPTURE_ALL = 0x7f000fn;
const K = 0xffff_ffff_8100_0000n;
/** Guest work: `n` taken near jumps and calls at CPL 0 and 3, each from a distinct address. */
const branches = (n: number, base = K): WorkUnit[] =>
  Array.from({ length: n }, (_, i) => ({
    cpl: i % 2 === 0 ? 0 : 3,
    instructions: 2,
    cycles: 3,
    branches: [
      {
        from: i % 2 === 0 ? base + BigInt(i * 0x40) : 0x40_0000n + BigInt(i * 0x40),
        to: i % 2 === 0 ? base + 0x8000n : 0x40_8000n,
        kind: i % 3 === 0 ? ('NEAR_REL_CALL' as const) : ('NEAR_REL_JMP' as const),
      },
    ],
  }));

function world(g: GuestConfig = guest, id = 'arch-lbr'): World {
  const d = designById(id);
  return new World({ host: h, cpus: CONFORMANCE_CPUS, guests: [g], design: d.factory, compare: false });
}

function run(cmds: readonly WorldCommand[], g: GuestConfig = guest): World {
  const w = world(g);
  for (const c of cmds) c.run({}, w);
  return w;
}

const sans = (o: Observation) => o.kind !== 'pmi';
const value = (o: Observation) => (o.sut.kind === 'value' ? o.sut.value : null);
const info = (v: bigint) => v & ~LBR_INFO_CYC_CNT;
/** An XSAVES image with the INFO cycle counts dropped (they count KVM's exits too: lbr-cycles-include-exits). */
const image = (a: ArchLbrXsave) => ({ ...a, entries: a.entries.map((e) => ({ ...e, info: info(e.info) })) });

/** RDMSR of FROM/TO/INFO of records 0..n-1. */
const recordReads = (n: number): WorldCommand[] =>
  Array.from({ length: n }, (_, k) => [
    new GuestRdmsr(0, MSR_ARCH_LBR_FROM_0 + k),
    new GuestRdmsr(0, MSR_ARCH_LBR_TO_0 + k),
    new GuestRdmsr(0, MSR_ARCH_LBR_INFO_0 + k),
  ]).flat();

/** The guest's reads of records and its XSAVES match bare metal's, INFO up to its cycle count. */
function expectBareMetalRecords(w: World): void {
  for (const o of w.observations.filter(sans)) {
    if (
      o.kind === 'rdmsr' &&
      o.target !== null &&
      o.target >= MSR_ARCH_LBR_INFO_0 &&
      o.target < MSR_ARCH_LBR_INFO_0 + 32
    )
      expect(info(value(o)!)).toBe(o.oracle.kind === 'value' ? info(o.oracle.value) : null);
    else if (o.kind === 'xsaves' && o.sut.kind === 'xsave' && o.oracle.kind === 'xsave')
      expect(image(o.sut.area)).toEqual(image(o.oracle.area));
    else expect([o.step, o.kind, o.target, o.sut]).toEqual([o.step, o.kind, o.target, o.oracle]);
  }
}

describe("seed 004's four tests on the Arch LBR v2 series (arch-lbr, Sapphire Rapids-like host)", () => {
  it('1. it works: with LBREn the guest records its branches, and RDMSR and XSAVES read them as bare metal does', () => {
    const w = run([
      new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
      new GuestRun(0, branches(6)),
      ...recordReads(7),
      new GuestXsaves(0),
    ]);
    expectBareMetalRecords(w);
    // Not vacuous: the newest record first, six of them, the seventh empty; and through the guest LBR event.
    const froms = w.observations
      .filter((o) => o.kind === 'rdmsr' && o.target! >= MSR_ARCH_LBR_FROM_0 && o.target! < MSR_ARCH_LBR_TO_0)
      .map(value);
    expect(froms).toEqual([0x40_0140n, K + 0x100n, 0x40_00c0n, K + 0x80n, 0x40_0040n, K, 0n]);
    const s = (w.vcpus[0] as EmulatedVcpu).s;
    expect(s.lbr.event?.state).toBe('ACTIVE');
    expect(s.passthrough.has(MSR_ARCH_LBR_FROM_0)).toBe(true);
  });

  it('2. save/restore is invisible: KVM_GET/SET_MSRS of LBR_CTL, DEPTH, XSS and the records carry the LBRs over', () => {
    const w = run([
      new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
      new GuestRun(0, branches(5)),
      new GuestXsaves(0), // sets IA32_XSS.LBR
      new SaveRestore(0, 1),
      new GuestRdmsr(0, MSR_ARCH_LBR_CTL),
      new GuestRdmsr(0, MSR_ARCH_LBR_DEPTH),
      ...recordReads(6),
      new GuestXsaves(0),
      new GuestRun(0, branches(2, K + 0x1000n)),
      new GuestXsaves(0),
    ]);
    expectBareMetalRecords(w);
    const x = w.vcpus[0]!;
    expect(x.cpu).toBe(1);
    expect(x.msrIndexList()).toEqual(expect.arrayContaining([MSR_IA32_XSS, MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH]));
    expect(x.hostGetMsr(MSR_IA32_XSS)).toEqual({ ok: true, value: bit(XFEATURE_LBR) });
    expect(x.hostGetMsr(MSR_ARCH_LBR_CTL)).toEqual({ ok: true, value: CAPTURE_ALL });
    // Not vacuous: the restored vCPU reads five records.
    const after = w.observations.filter((o) => o.kind === 'rdmsr' && o.target === MSR_ARCH_LBR_FROM_0 + 4);
    expect(value(after[0]!)).not.toBe(0n);
  });

  // CPUID 7.EDX[19] on or off, leaf 0x1C absent or KVM's with fewer CPL/filter/call-stack bits, PDCM and LBR_FMT.
  const cpuidArb: fc.Arbitrary<GuestConfig> = fc
    .record({
      archLbr: fc.boolean(),
      leaf: fc.constantFrom('absent', 'kvm', 'subset'),
      ebx: fc.nat(7),
      ecx: fc.nat(7),
      pdcm: fc.boolean(),
      version: fc.integer({ min: 1, max: 2 }),
    })
    .map((r) => ({
      cpuid: {
        ...guest.cpuid,
        leaf0a: { ...guest.cpuid.leaf0a, eax: leaf0aEax(r.version, 8, h.gpWidth, h.evLen) },
        pdcm: r.pdcm,
        archLbr: r.archLbr,
        ...(r.leaf === 'absent'
          ? {}
          : { leaf1c: r.leaf === 'kvm' ? leaf1c : { ...leaf1c, ebx: leaf1c.ebx & r.ebx, ecx: leaf1c.ecx & r.ecx } }),
      },
      // An Arch LBR part enumerates LBR_FMT 0x3f, no other part does (any other pairing is no CPU: W4).
      perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: r.archLbr && r.leaf !== 'absent' ? LBR_FMT_ARCH : 0 }),
    }));
  const LBR_MSRS = [
    MSR_ARCH_LBR_CTL,
    MSR_ARCH_LBR_DEPTH,
    MSR_ARCH_LBR_FROM_0,
    MSR_ARCH_LBR_TO_0 + 31,
    MSR_ARCH_LBR_INFO_0 + 7,
    MSR_ARCH_LBR_FROM_0 + 32, // beyond the depth
    MSR_LBR_SELECT,
    MSR_LBR_TOS,
    MSR_IA32_DEBUGCTLMSR,
  ];
  const writeArb = fc.oneof(
    fc.constantFrom(...LBR_MSRS).map((m) => new GuestRdmsr(0, m) as WorldCommand),
    // LBR_CTL bit by bit (CPL, call stack, branch types need CPUID.1CH.EBX) and DEPTH 8 or 32.
    fc
      .constantFrom(0n, 1n, 3n, 5n, 9n, 0x10001n, 0x80001n, 0x7f000fn, 0x10n)
      .map((v) => new GuestWrmsr(0, MSR_ARCH_LBR_CTL, v) as WorldCommand),
    fc.constantFrom(8n, 32n, 0n).map((v) => new GuestWrmsr(0, MSR_ARCH_LBR_DEPTH, v) as WorldCommand),
  );

  it('3. MSR access follows guest CPUID: every LBR MSR #GPs exactly where bare metal of that CPUID #GPs', () => {
    let armed = 0;
    fc.assert(
      fc.property(cpuidArb, fc.array(writeArb, { minLength: 1, maxLength: 12 }), (g, cmds) => {
        if (impossibleEnumeration(h, g) !== null) return; // a model no CPU has (W4): no bare metal to follow
        const w = run(cmds, g);
        for (const o of w.observations.filter((x) => x.kind === 'rdmsr' || x.kind === 'wrmsr'))
          expect([o.kind, o.target, o.value, o.sut.kind === 'gp']).toEqual([
            o.kind,
            o.target,
            o.value,
            o.oracle.kind === 'gp',
          ]);
        if ((w.vcpus[0] as EmulatedVcpu).s.lbr.nr !== 0) armed++;
      }),
      { numRuns: 150 },
    );
    expect(armed).toBeGreaterThan(10); // guest Arch LBR was enabled in some of them
  });

  it('3. (KVM_SET_CPUID2) a leaf 0x1C depth mask other than the host deepest depth is refused (-EINVAL)', () => {
    const host = new HostKernel({ profile: h, cpus: 1 });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: guest.cpuid }, ARCH_LBR_OPS);
    expect(v.setCpuid({ ...guest.cpuid, leaf1c: { ...leaf1c, eax: (leaf1c.eax & ~0xff) | 0x1 } }).ok).toBe(false);
    expect(v.setCpuid({ ...guest.cpuid, archLbr: false, leaf1c: { ...leaf1c, eax: leaf1c.eax | 0xf } }).ok).toBe(false);
    expect(v.setCpuid(guest.cpuid).ok).toBe(true);
  });

  /**
   * Sean's fourth test: a host LBR user (a pinned CPU-wide branch-stack event, perf record -b -a) on the vCPU's pCPU,
   * host work it records, then each guest access with the pCPU's LBRs probed around it. What a design gets wrong, by
   * name; [] when it leaks and disturbs nothing.
   */
  function contention(ops: EmulatedOps, g: GuestConfig): string[] {
    const host = new HostKernel({ profile: h, cpus: 1 });
    const user = host.perf_event_create_kernel_counter(
      attr({
        config: 0xc4n,
        sample_period: 1_000_000n,
        pinned: true,
        exclude_guest: true,
        branchSample: { user: true, kernel: true, callStack: false },
      }),
      { cpu: 0 },
    );
    expect('error' in user).toBe(false);
    const hw = host.pcpu(0).hw;
    const HOST = 0xffff_ffff_a000_0000n;
    // Host kernel work: four jumps, each from its own address above HOST.
    const hostWork: WorkUnit[] = [0, 1, 2, 3].map((i) => ({
      cpl: 0,
      instructions: 2,
      cycles: 3,
      branches: [{ from: HOST + BigInt(i * 0x40), to: HOST + 0x8000n, kind: 'NEAR_REL_JMP' as const }],
    }));
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: g.cpuid }, ops);
    v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, g.perfCapabilities);
    host.runHost(0, hostWork); // host kernel work on the vCPU thread (an interrupt before KVM_RUN)
    const hostCtl = hw.rdmsr(MSR_ARCH_LBR_CTL);
    const before = [0, 1, 2, 3].map((k) => hw.rdmsr(MSR_ARCH_LBR_FROM_0 + k));
    expect(before.every((r) => r.ok && r.value >= HOST)).toBe(true); // the host user records
    const found = new Set<string>();
    const isHost = (x: bigint) => x >= HOST && x < HOST + 0x10000n;
    const r = v.guestRdmsr(MSR_ARCH_LBR_FROM_0);
    if (r.ok && isHost(r.value)) found.add('guest RDMSR reads host records');
    if (valueOf(hw.rdmsr(MSR_ARCH_LBR_CTL)) !== valueOf(hostCtl)) found.add('VM-exit leaves the host LBR_CTL cleared');
    const x = v.guestXsaves();
    if (x.ok && x.area.entries.some((e) => isHost(e.from))) found.add('guest XSAVES shows host records');
    const hostNow = (k: number) => valueOf(hw.rdmsr(MSR_ARCH_LBR_FROM_0 + k));
    const xr = v.guestXrstors({
      ...(x.ok ? x.area : EMPTY),
      entries: (x.ok ? x.area : EMPTY).entries.map(() => ({ from: K, to: K, info: 0n })),
    });
    if (xr.ok && hostNow(0) === K) found.add('guest XRSTORS overwrites host records');
    host.runHost(0, hostWork); // the host user records again (after its next PMU enable)
    const d = v.guestWrmsr(MSR_ARCH_LBR_DEPTH, 32n);
    if (d.ok && before.some((b, k) => b.ok && b.value !== 0n && hostNow(k) === 0n))
      found.add('guest DEPTH write zeroes host records');
    return [...found].sort();
  }
  const valueOf = (a: { ok: boolean; value?: bigint }) => (a.ok ? a.value! : -1n);
  const EMPTY: ArchLbrXsave = {
    lbrCtl: 0n,
    lbrDepth: 32n,
    lerFrom: 0n,
    lerTo: 0n,
    lerInfo: 0n,
    entries: Array(32).fill({ from: 0n, to: 0n, info: 0n }),
  };

  it('4. host/guest contention: upstream (no guest Arch LBR) leaks and disturbs nothing', () => {
    expect(contention(EMULATED_OPS, guest)).toEqual([]);
  });

  it('4. host/guest contention: the v2 series leaks host records to the guest and clobbers the host LBRs (a finding)', () => {
    // Patch 14/15's raw record RDMSR and the unintercepted XSAVES read the host's records; XRSTORS and patch 05/15's
    // unchecked DEPTH write overwrite and zero them; patch 10/15's VM_EXIT_CLEAR_IA32_LBR_CTL never restores the
    // host's LBR_CTL (R-AL2-05, R-AL2-10, R-AL2-14).
    expect(contention(ARCH_LBR_OPS, guest)).toEqual([
      'VM-exit leaves the host LBR_CTL cleared',
      'guest DEPTH write zeroes host records',
      'guest RDMSR reads host records',
      'guest XRSTORS overwrites host records',
      'guest XSAVES shows host records',
    ]);
  });
});

describe('the Arch LBR v2 series: each declared divergence is met by a program, and a planted fault is found', () => {
  const met = (g: GuestConfig, cmds: WorldCommand[]): string[] => {
    const known = new Map<string, number>();
    runProgram({ host: h, design: design.factory, expectations: ARCH_LBR_EXPECTATIONS, known }, g, cmds);
    return [...known.keys()];
  };
  const noArch: GuestConfig = {
    cpuid: { ...guest.cpuid, archLbr: false },
    perfCapabilities: perfCaps({ fwWrite: true }),
  };
  const PROGRAMS: Record<string, [GuestConfig, WorldCommand[]]> = {
    'lbr-fmt-arch-mismatch': [guest, [new VmmSetMsr(0, MSR_IA32_PERF_CAPABILITIES, 0n)]],
    'xss-lbr-without-arch-lbr': [noArch, [new GuestXsaves(0)]],
    'vmm-debugctl-lbr-lost': [
      noArch,
      [new VmmSetMsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR), new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR)],
    ],
    'vmm-debugctl-lbr-kept-across-cpuid': [
      noArch,
      [
        new VmmSetMsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR),
        new VmmSetCpuid(0, guest),
        new VmmGetMsr(0, MSR_IA32_DEBUGCTLMSR),
      ],
    ],
    'xrstors-lbren-no-event': [
      guest,
      [
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
        new GuestXsaves(0),
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, 0n),
        new Migrate(0, 0),
        new GuestXrstors(0),
        new GuestRun(0, branches(2)),
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
        new GuestRdmsr(0, MSR_ARCH_LBR_FROM_0),
      ],
    ],
    'arch-lbr-lazy-release': [
      guest,
      [
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
        new GuestRun(0, branches(2)),
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, 0n),
        new Migrate(0, 0),
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
        new GuestRdmsr(0, MSR_ARCH_LBR_FROM_0),
      ],
    ],
    'records-on-the-pcpu': [
      guest,
      [
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, CAPTURE_ALL),
        new GuestRun(0, branches(1)),
        new Migrate(0, 1),
        new GuestXrstors(0),
        new Migrate(0, 1),
        new GuestXrstors(0),
        new Migrate(0, 0),
        new GuestRdmsr(0, MSR_ARCH_LBR_FROM_0),
      ],
    ],
  };

  it.each(ARCH_LBR_DECLARED.map((k) => [k.id] as const))('%s', (id) => {
    const [g, cmds] = PROGRAMS[id]!;
    expect(met(g, cmds)).toContain(id);
  });

  it('LBR freeze (property 3) on Arch LBR guests: the series clears LBREn as a v2 part does (D41); freezing DEBUGCTL.LBR instead is found', () => {
    const known = new Map<string, number>();
    const run = { host: h, design: design.factory, expectations: ARCH_LBR_EXPECTATIONS, known };
    fc.assert(lbrFreezeProperty(run), { numRuns: 100 });
    expect([...known.keys()]).toEqual([]);
    // Upstream's freeze function clears DEBUGCTL.LBR, which Arch LBR does not have: the guest keeps recording.
    const legacyFreeze: EmulatedOps = {
      ...ARCH_LBR_OPS,
      intel_pmu_legacy_freezing_lbrs_on_pmi: (vcpu) => EMULATED_OPS.intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu),
    };
    const planted = { host: h, design: emulatedWith(legacyFreeze), expectations: ARCH_LBR_EXPECTATIONS };
    // Seeds 1–6 all find it within 3 programs, at a record read past the PMI.
    for (const seed of [1, 2]) {
      const d = fc.check(lbrFreezeProperty(planted), { seed, numRuns: 20, endOnFailure: true });
      expect(d.failed).toBe(true);
      expect(String(d.errorInstance)).toMatch(/RDMSR 0x1[56]0[0-7]/);
    }
  });

  it('a planted fault, VM-exit not saving LBR_CTL into the VMCS (an XRSTORS of it is lost), is found on two seeds', () => {
    const unsaved: EmulatedOps = {
      ...ARCH_LBR_OPS,
      vmx_vcpu_exit: (vcpu: KvmVcpuState) => {
        const keep = (vcpu as ArchLbrVcpu).guest_lbr_ctl;
        ARCH_LBR_OPS.vmx_vcpu_exit(vcpu);
        (vcpu as ArchLbrVcpu).guest_lbr_ctl = keep;
      },
    };
    const planted = { host: h, design: emulatedWith(unsaved), expectations: ARCH_LBR_EXPECTATIONS };
    // Seeds 1–8 all find it within 13 lbr-heavy programs (an XSAVES image or an LBR_CTL read after an XRSTORS).
    for (const seed of [1, 5]) {
      const d = fc.check(conformanceProperty(planted, 'lbr-heavy'), { seed, numRuns: 20, endOnFailure: true });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(Divergence);
      expect(String(d.errorInstance)).toMatch(/RDMSR 0x14ce|XSAVES/);
    }
  });
});
