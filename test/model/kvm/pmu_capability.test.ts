/**
 * The per-VM PMU switch, KVM_CAP_PMU_CAPABILITY with KVM_PMU_CAP_DISABLE (ba7bb663f554), on both designs:
 *
 * - the selftest x86/pmu_event_filter_test.c test_pmu_config_disable: KVM_CHECK_EXTENSION offers KVM_PMU_CAP_DISABLE,
 *   KVM_ENABLE_CAP succeeds on a VM without vCPUs, and the guest of a vCPU added then fails sanity_check_pmu (its
 *   check_msr of GLOBAL_CTRL, EVNTSEL0 and IA32_PMC0 #GPs) although its CPUID is KVM_GET_SUPPORTED_CPUID's, while the
 *   same guest in a VM without the cap passes it (main()'s TEST_REQUIRE(sanity_check_pmu(vcpu)));
 * - kvm_vm_ioctl_enable_cap's rule, which no upstream test checks: -EINVAL without enable_pmu, for an unknown flag,
 *   and once the VM has created a vCPU (or a mediated PMU); repeatable before that.
 */
import { describe, expect, it } from 'vitest';
import type { Access } from '../../../model/hw/access.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu, newKvm } from '../../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import { kvm_vm_ioctl_check_extension, kvm_vm_ioctl_enable_cap } from '../../../model/kvm/common/vcpu.js';
import { MediatedVcpu, newMediatedKvm } from '../../../model/kvm/mediated/vcpu.js';
import { KVM_PMU_CAP_DISABLE, KvmIoctlError, type VpmuVcpu } from '../../../model/kvm/types.js';
import { MSR_IA32_PMC0, MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { defaultCpuid } from './util.js';

type Create = (host: HostKernel, pmuCap?: bigint) => VpmuVcpu;

const DESIGNS: readonly (readonly [string, Create])[] = [
  [
    'emulated',
    (host, pmuCap) =>
      new EmulatedVcpu(host, {
        cpu: 0,
        cpuid: defaultCpuid(host.profile),
        ...(pmuCap !== undefined ? { pmuCap } : {}),
      }),
  ],
  [
    'mediated',
    (host, pmuCap) =>
      new MediatedVcpu(host, {
        cpu: 0,
        cpuid: defaultCpuid(host.profile),
        ...(pmuCap !== undefined ? { pmuCap } : {}),
      }),
  ],
];

const EFAULT = -14;
const EIO = -5;

/** The guest's #GP handler syncs -EFAULT; check_msr syncs -EIO on a mismatch; 0 when the PMU works. */
class GuestSync extends Error {
  constructor(readonly code: number) {
    super(`GUEST_SYNC(${code})`);
  }
}

const read = (a: Access): bigint => {
  if (!a.ok) throw new GuestSync(EFAULT);
  return a.value;
};

/** check_msr: flip bits, read back, flip them back, read back. */
function checkMsr(v: VpmuVcpu, msr: number, bitsToFlip: bigint): void {
  let x = read(v.guestRdmsr(msr)) ^ bitsToFlip;
  read(v.guestWrmsr(msr, x));
  if (read(v.guestRdmsr(msr)) !== x) throw new GuestSync(EIO);
  x ^= bitsToFlip;
  read(v.guestWrmsr(msr, x));
  if (read(v.guestRdmsr(msr)) !== x) throw new GuestSync(EIO);
}

/** sanity_check_pmu with intel_guest_code: what the guest syncs first; the PMU is usable iff 0. */
function sanityCheckPmu(v: VpmuVcpu): number {
  try {
    checkMsr(v, MSR_CORE_PERF_GLOBAL_CTRL, 1n);
    checkMsr(v, MSR_P6_EVNTSEL0, 0xffffn);
    checkMsr(v, MSR_IA32_PMC0, 0xffffn);
    return 0;
  } catch (e) {
    if (e instanceof GuestSync) return e.code;
    throw e;
  }
}

describe.each(DESIGNS)('pmu_event_filter_test test_pmu_config_disable on the %s design', (_name, create) => {
  it('KVM_CHECK_EXTENSION offers KVM_PMU_CAP_DISABLE; a guest in a VM created with it fails sanity_check_pmu with -EFAULT, one without it passes', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const plain = create(host);
    expect(plain.pmuCapabilityFlags() & KVM_PMU_CAP_DISABLE, 'kvm_check_cap(KVM_CAP_PMU_CAPABILITY)').toBe(
      KVM_PMU_CAP_DISABLE,
    );
    expect(sanityCheckPmu(plain), 'TEST_REQUIRE(sanity_check_pmu(vcpu))').toBe(0);
    plain.destroy();
    const disabled = create(host, KVM_PMU_CAP_DISABLE);
    expect(sanityCheckPmu(disabled), 'Guest should not be able to use disabled PMU.').toBe(EFAULT);
    // Beyond the selftest: no PMU MSR of the guest's CPUID is there, and RDPMC faults.
    expect(disabled.guestRdmsr(MSR_P6_EVNTSEL0 + 2).ok, 'EVNTSEL2').toBe(false);
    expect(disabled.guestRdpmc(0, 0).ok, 'RDPMC 0').toBe(false);
  });
});

describe.each(DESIGNS)('kvm_vm_ioctl_enable_cap(KVM_CAP_PMU_CAPABILITY) on the %s design', (_name, create) => {
  it('is refused (-EINVAL) once the VM has a vCPU, whatever the flags, and changes nothing', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const v = create(host);
    for (const args of [KVM_PMU_CAP_DISABLE, 0n]) {
      const r = v.enablePmuCapability(args);
      expect(r.ok, `KVM_ENABLE_CAP 0x${args.toString(16)}`).toBe(false);
      expect(!r.ok && r.errno).toBe('EINVAL');
    }
    expect(sanityCheckPmu(v), 'the vPMU is still there').toBe(0);
  });

  it('takes an unknown flag nowhere, and a refused setup creates no vCPU', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    expect(() => create(host, 0x2n)).toThrow(KvmIoctlError);
    expect(() => create(host, 0x3n)).toThrow(/unknown flags/);
  });
});

describe('KVM_CAP_PMU_CAPABILITY before the first vCPU', () => {
  it('is repeatable: DISABLE, then 0, leaves the VM with a vPMU; DISABLE alone leaves it without (emulated)', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const vm = newKvm(true);
    expect(kvm_vm_ioctl_enable_cap(vm, true, KVM_PMU_CAP_DISABLE).ok).toBe(true);
    expect(kvm_vm_ioctl_enable_cap(vm, true, 0n).ok).toBe(true);
    expect(sanityCheckPmu(new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE), vm }))).toBe(0);
    const off = newKvm(true);
    expect(kvm_vm_ioctl_enable_cap(off, true, KVM_PMU_CAP_DISABLE).ok).toBe(true);
    expect(sanityCheckPmu(new EmulatedVcpu(host, { cpu: 1, cpuid: defaultCpuid(SKYLAKE), vm: off }))).toBe(EFAULT);
  });

  it('is refused after a vCPU was created and destroyed (kvm->created_vcpus never goes down)', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const vm = newKvm(true);
    new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE), vm }).destroy();
    expect(
      () => new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE), vm, pmuCap: KVM_PMU_CAP_DISABLE }),
    ).toThrow(/KVM_CREATE_VCPU/);
  });

  it('without the module enable_pmu KVM offers no flag and refuses the cap', () => {
    expect(kvm_vm_ioctl_check_extension(false)).toBe(0n);
    const r = kvm_vm_ioctl_enable_cap(newKvm(false), false, KVM_PMU_CAP_DISABLE);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/enable_pmu is off/);
  });

  it('mediated: a VM with its vPMU off creates no mediated PMU, so a host event counting the guest can still be opened', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const vm = newMediatedKvm(true);
    new MediatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE), vm, pmuCap: KVM_PMU_CAP_DISABLE });
    expect(vm.created_mediated_pmu, 'kvm_arch_vcpu_precreate: perf_create_mediated_pmu not called').toBe(false);
    const ev = host.perf_event_open(attr({ config: 0xc0n }), { cpu: 1 });
    expect('error' in ev, 'perf_event_open of an include-guest event').toBe(false);
  });
});

describe('the checks bite', () => {
  it('a KVM where the module alone decides (before ba7bb663f554) passes sanity_check_pmu in a VM created with the switch', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const ops: EmulatedOps = {
      ...EMULATED_OPS,
      kvm_pmu_refresh: (vcpu) => {
        const asked = vcpu.kvm.enable_pmu;
        vcpu.kvm.enable_pmu = vcpu.kvm_pmu_cap.enable_pmu;
        EMULATED_OPS.kvm_pmu_refresh(vcpu);
        vcpu.kvm.enable_pmu = asked;
      },
    };
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE), pmuCap: KVM_PMU_CAP_DISABLE }, ops);
    expect(sanityCheckPmu(v), 'the test would report "Guest should not be able to use disabled PMU."').toBe(0);
  });
});
