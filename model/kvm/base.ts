/**
 * The upstream tree the KVM port follows. model/kvm/README.md gives, per ported function, the commit it was
 * checked against; every report names this base, and a report whose design names none is refused.
 */

/** The mainline tag and the KVM merge the port follows. */
export const KVM_PORT_TAG = 'v7.0-rc1';
export const KVM_PORT_MERGE = 'bf2c3138ae36 ("Merge tag \'kvm-x86-pmu-6.20\'", the mediated vPMU series)';
/** Changes after the merge the port also follows, from kvm-x86 next. */
export const KVM_PORT_NEXT = ['ca674df13b19 ("KVM: VMX: Handle bad values on proxied writes to LBR MSRs")'] as const;

/** The base in one line, as a report's header gives it. */
export const KVM_PORT_BASE = `Linux ${KVM_PORT_TAG} (KVM x86 vPMU at merge ${KVM_PORT_MERGE}) plus ${KVM_PORT_NEXT.join(', ')} from kvm-x86 next`;
