/**
 * What perf provides for the mediated vPMU (model/host/mediated.ts) held directly to
 * kernel/events/core.c: nr_mediated_pmu_vms counts every VM (perf_create_mediated_pmu takes the
 * atomic_inc_not_zero fast path for the second and later VMs, refuses the first with -EBUSY while an
 * include-guest event exists), perf_release_mediated_pmu drops one VM at a time, include-guest
 * events are refused while any VM remains; the WARN_ON_ONCE conditions (an unbalanced release,
 * unaccount, guest context load or put) are model errors; and the decisions H15 and H16 are recorded
 * where they decide an outcome and not elsewhere.
 */
import { describe, expect, it } from 'vitest';
import { ModelError } from '../../../model/hw/errors.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { HostKernel } from '../../../model/host/perf.js';
import {
  mediated_pmu_account_event,
  mediated_pmu_unaccount_event,
  newMediatedPmuState,
  perf_create_mediated_pmu,
  perf_load_guest_context,
  perf_put_guest_context,
  perf_release_mediated_pmu,
} from '../../../model/host/mediated.js';
import { attr } from '../../../model/host/types.js';
import { thrownBy } from '../../support/thrown.js';
import { INSTRUCTIONS } from './util.js';

const INCLUDE_GUEST = attr({ config: INSTRUCTIONS });
const EXCLUDE_GUEST = attr({ config: INSTRUCTIONS, exclude_guest: true });
const OK = { ok: true };

function host(): HostKernel {
  return new HostKernel({ profile: SKYLAKE, cpus: 2 });
}

/** Whether perf_event_open of an include-guest event on CPU 1 succeeds. */
function includeGuestOpens(h: HostKernel): boolean {
  return !('error' in h.perf_event_open(INCLUDE_GUEST, { cpu: 1 }));
}

/** The model error `f` threw (a WARN_ON_ONCE in the kernel), its text naming the function. */
function warned(f: () => unknown, text: RegExp): void {
  const e = thrownBy(f);
  expect(e).toBeInstanceOf(ModelError);
  expect((e as Error).message).toMatch(text);
}

describe('nr_mediated_pmu_vms: perf_create_mediated_pmu and perf_release_mediated_pmu', () => {
  it('the first VM is created when no include-guest event exists', () => {
    const h = host();
    expect(perf_create_mediated_pmu(h)).toEqual(OK);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(1);
  });

  it('a second VM is counted too: include-guest events stay refused until both are released', () => {
    const h = host();
    expect(perf_create_mediated_pmu(h)).toEqual(OK);
    expect(perf_create_mediated_pmu(h)).toEqual(OK);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(2);
    expect(includeGuestOpens(h)).toBe(false);
    perf_release_mediated_pmu(h);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(1);
    expect(includeGuestOpens(h)).toBe(false);
    perf_release_mediated_pmu(h);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(0);
    expect(includeGuestOpens(h)).toBe(true);
  });

  it('the first VM is refused with EBUSY while an include-guest event exists, and not counted', () => {
    const h = host();
    expect(includeGuestOpens(h)).toBe(true);
    const r = perf_create_mediated_pmu(h);
    expect('error' in r && r.error).toMatch(/^EBUSY/);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(0);
  });

  it('releasing with no mediated VM is a WARN_ON_ONCE', () => {
    const h = host();
    warned(() => perf_release_mediated_pmu(h), /perf_release_mediated_pmu/);
    expect(h.mediatedPmu.nrMediatedPmuVms).toBe(0);
  });
});

describe('nr_include_guest_events: mediated_pmu_account_event and mediated_pmu_unaccount_event', () => {
  it('only include-guest events are counted, and unaccounted', () => {
    const m = newMediatedPmuState();
    expect(mediated_pmu_account_event(m, EXCLUDE_GUEST)).toBeNull();
    expect(m.nrIncludeGuestEvents).toBe(0);
    expect(mediated_pmu_account_event(m, INCLUDE_GUEST)).toBeNull();
    expect(m.nrIncludeGuestEvents).toBe(1);
    mediated_pmu_unaccount_event(m, EXCLUDE_GUEST);
    expect(m.nrIncludeGuestEvents).toBe(1);
    mediated_pmu_unaccount_event(m, INCLUDE_GUEST);
    expect(m.nrIncludeGuestEvents).toBe(0);
  });

  it('unaccounting an include-guest event that was never accounted is a WARN_ON_ONCE', () => {
    const m = newMediatedPmuState();
    warned(() => mediated_pmu_unaccount_event(m, INCLUDE_GUEST), /unaccount/);
    expect(m.nrIncludeGuestEvents).toBe(0);
  });
});

describe('the guest context switch: perf_load_guest_context and perf_put_guest_context', () => {
  it('loads and puts once per CPU, each CPU on its own', () => {
    const h = host();
    perf_load_guest_context(h, 0);
    perf_load_guest_context(h, 1);
    expect([...h.mediatedPmu.guestCtxLoaded].sort()).toEqual([0, 1]);
    perf_put_guest_context(h, 0);
    expect([...h.mediatedPmu.guestCtxLoaded]).toEqual([1]);
  });

  it('loading a CPU that already has a guest context is a WARN_ON_ONCE', () => {
    const h = host();
    perf_load_guest_context(h, 0);
    warned(() => perf_load_guest_context(h, 0), /perf_load_guest_context: CPU 0/);
  });

  it('putting a CPU that has no guest context is a WARN_ON_ONCE', () => {
    const h = host();
    warned(() => perf_put_guest_context(h, 1), /perf_put_guest_context: CPU 1/);
    perf_load_guest_context(h, 0);
    warned(() => perf_put_guest_context(h, 1), /perf_put_guest_context: CPU 1/);
  });
});

describe('decision records', () => {
  const recorded = (f: () => unknown): DecisionLog => {
    const log = new DecisionLog();
    recording(log, f);
    return log;
  };

  it('H15: an include-guest event refused while a mediated VM exists, not an exclude_guest one or one without a VM', () => {
    const m = newMediatedPmuState();
    expect(recorded(() => mediated_pmu_account_event(m, INCLUDE_GUEST)).ids).toEqual([]);
    mediated_pmu_unaccount_event(m, INCLUDE_GUEST);
    m.nrMediatedPmuVms = 1;
    expect(recorded(() => mediated_pmu_account_event(m, EXCLUDE_GUEST)).ids).toEqual([]);
    let r: string | null = null;
    expect(recorded(() => (r = mediated_pmu_account_event(m, INCLUDE_GUEST))).ids).toEqual(['H15']);
    expect(r).toMatch(/^EOPNOTSUPP/);
    expect(m.nrIncludeGuestEvents).toBe(0);
  });

  it('H16: the host events scheduled back in by perf_put_guest_context, not by the load', () => {
    const h = host();
    expect(recorded(() => perf_load_guest_context(h, 0)).ids).toEqual([]);
    expect(recorded(() => perf_put_guest_context(h, 0)).ids).toEqual(['H16']);
  });
});
