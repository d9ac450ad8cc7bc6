import { describe, expect, it } from 'vitest';
import { EQUIVALENT_FAULTS, FAULTS } from '../../catalogue/faults.js';
import { measureFault } from '../../catalogue/measure.js';

/** The programs per property `npm test` and `npm start` run by default. */
const BUDGET = 1000;

/**
 * The planted faults `npm test` holds, each on two fixed seeds where the faithful design passes the programs that
 * found it. The seeds are the two of 1..6 (or beyond, where it says so) on
 * which the search found the fault in the fewest programs (the comment: the larger of the two counts
 * when they were chosen), so the suite pays seconds, not minutes; the budget stays the default, so
 * a change to the generators that makes a fault rarer fails here only when it is no longer found in
 * 1000 programs. Only detection is held (the search stops at the first failure, no shrinking):
 * `npm run bugs` measures programs to find and shrunk length on five seeds.
 */
const HELD: Readonly<Record<string, readonly [number, number]>> = {
  'ovf-ctrl-no-clear': [4, 6], // 1
  'ovf-ctrl-keeps-fixed-bits': [4, 6], // 1
  'ovf-ctrl-rsvd-unchecked': [3, 6], // 5
  'status-writable-by-guest': [6, 2], // 13
  'host-status-rsvd-unchecked': [6, 8], // 4
  'host-counter-write-sign-extended': [7, 5], // 27
  'set-cpuid-clears-debugctl': [3, 7], // 197 (found on 5 of seeds 1-8)
  'global-ctrl-diff-one-way': [4, 5], // 7
  'global-ctrl-no-request': [4, 5], // 2
  'trigger-ignores-global-ctrl': [6, 2], // 2
  'fixed-cpl-bits-swapped': [6, 3], // 2
  'rdpmc-pce-ignored': [1, 2], // 2
  'global-msrs-on-v1': [2, 3], // 2
  'lvtpc-not-masked-on-pmi': [1, 2], // 4
  'pmi-while-masked': [2, 4], // 82
  'globally-enabled-on-v1': [5, 4], // 12
  'recalc-ignores-enable': [4, 6], // 285
  'fixed-rsvd-pmi-bit': [3, 4], // 1
  'gp-width-off-by-one': [1, 3], // 2
  'legacy-write-zero-extended': [3, 6], // 2
  'fw-write-width-unchecked': [4, 1], // 6
  'eventsel-reprogram-before-store': [1, 2], // 64
  'selector-rsvd-unchecked': [6, 2], // 4
  'fixed-ctrl-rsvd-unchecked': [1, 2], // 1
  'fixed-reprogram-skips-last': [2, 3], // 3
  'fixed-snapshot-after-store': [6, 2], // 2
  'lvtpc-mask-not-writable': [2, 6], // 22
  'perf-caps-guest-write-dropped': [1, 3], // 2
  'msr-list-globals-v3': [6, 4], // 2
  'set-cpuid-after-run-accepted': [5, 3], // 4
  'set-cpuid-entries-unchecked': [3, 4], // 3 (found on each of seeds 1-8 since vmm-abi sets a vCPU's model again)
  'pause-overflow-off-by-one': [3, 4], // 1
  'resume-keeps-old-period': [1, 2], // 2 (a mutation survivor: the mutation suite runs no driver programs on it)
  'reprogram-ignores-global': [4, 5], // 7
  'overflow-no-reprogram': [11, 3], // 120 (its finds on seeds 2, 5 and 9 were the faithful design's own, then undeclared)
  'incr-counter-no-request': [5, 4], // 13
  'refresh-no-global-ctrl-reset': [1, 4], // 2
  'cleanup-releases-enabled': [12, 2], // 51 (seeds 1-12 since work units are drawn straight from the source: 56, 51, 57, 155, none, 596, 102, 293, 365, 140, 268, 20)
  'no-legacy-freeze': [1, 3], // 1
  'exit-keeps-guest-global-ctrl': [3, 4], // 2
  'med-emul-overflow-no-status': [4, 6], // 1
  'med-emul-pmi-ignores-int': [3, 2], // 3 (found on each of seeds 1-8 by kvm-unit-tests' overflow check; a mutation survivor)
  'med-refresh-no-vmcs-ctrl': [5, 4], // 12
  'med-global-passthrough-partial': [2, 6], // 10
  'med-put-status-or': [4, 6], // 1
  'med-status-set-gp-only': [4, 6], // 1
  'med-global-ctrl-not-read-back': [4, 6], // 1
  'med-pmcx-without-fw': [3, 5], // 4
  'host-guest-ctrl-drops-fixed': [6, 3], // 2
  'host-preset-off-by-one': [3, 6], // 1
  'host-config-drops-int': [3, 6], // 2
  // Measured again with the generators and declarations of December 2026: found on seeds where they were not before.
  'overflow-ignores-int': [4, 1], // 2 (on each of seeds 1-8 since the driver profile runs kvm-unit-tests' overflow check; was 420, on 4 of 30)
  'ovf-ctrl-reads-status': [8, 1], // 219 (found on 6 of seeds 1-30 since work units are drawn straight from the source)
  'write-counter-ignores-perf-count': [12, 7], // 6 (found on each of seeds 1-12)
  'debugctl-no-frz': [1, 2], // 1 (found on each of seeds 1-12)
  'pmi-before-pmu-request': [1, 10], // 128 (found on 10 of seeds 1-12)
  // Found once vmm-conformance's VMM saves (KVM_GET_MSRS of several saved MSRs) now and then; measured again once its
  // filter now and then names the guest's event with a bit of 35:32 (never matching on Intel): on 6 of seeds 1-25 each.
  'reset-keeps-status': [21, 10], // 423
  'med-reset-keeps-status': [21, 10], // 423
  // A mutation survivor (the mutation suite's 25 vmm-conformance programs never denied a GP event the guest counted).
  'med-filter-skips-gp': [1, 7], // 22 (found on each of seeds 1-12)
  // Found once vmm-conformance's filter names the events and fixed counters its guest programs and reads, allowed or
  // denied, and a masked filter is now and then "every unit mask of an event but one"; measured again as above.
  'filter-allow-all-fixed': [9, 12], // 91 (found on 11 of seeds 1-12)
  'med-load-fixed-ctrl-unfiltered': [4, 25], // 37 (found on 21 of the 22 seeds measured in 1-25)
  'filter-excludes-ignored': [3, 12], // 65 (found on 11 of seeds 1-12)
  // Found once lbr-freeze's guest now and then sets LBR without FREEZE_LBRS_ON_PMI (Linux's call-stack mode).
  'freeze-without-frz': [12, 5], // 2 (found on each of seeds 1-12)
  // Found on beyond-supported, the only profile with v4+ guests (KVM reports version 2), as bugs.md #17.
  'legacy-freeze-on-v4': [1, 8], // 1 (found on each of seeds 1-12)
};

/**
 * Planted faults the search does not find today within the default budget, each with what was seen.
 * They stay in the corpus (npm run bugs reports them as misses) so that narrowing a declaration or
 * widening a generator shows up as a fault moving into HELD.
 */
const NOT_FOUND: Readonly<Record<string, string>> = {};

describe('the planted faults', () => {
  it('are at least 40 held, each either held or named as not found today, with no id twice', () => {
    const ids = FAULTS.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(Object.keys(HELD).length).toBeGreaterThanOrEqual(40);
    expect([...Object.keys(HELD), ...Object.keys(NOT_FOUND)].sort()).toEqual([...ids].sort());
    for (const e of EQUIVALENT_FAULTS) expect(ids).not.toContain(e.id);
  });

  it('spread over every ported file of both designs and the host perf model', () => {
    const files = new Set(FAULTS.filter((f) => f.id in HELD).map((f) => f.file.replace(/\/[^/]+$/, '')));
    expect(files).toEqual(new Set(['model/kvm/common', 'model/kvm/emulated', 'model/kvm/mediated', 'model/host']));
  });

  for (const f of FAULTS.filter((x) => x.id in HELD))
    it(`${f.id} (${f.file}: ${f.fn}) is found by ${f.check}${f.gen !== undefined ? `/${f.gen}` : ''} on seeds ${HELD[f.id]!.join(' and ')}`, () => {
      for (const seed of HELD[f.id]!) {
        // The fault's own: the faithful design passes the same programs up to the one that found it.
        const m = measureFault(f, seed, BUDGET, false);
        const why = m.baseFailedFirst
          ? `the faithful ${f.base.id} fails first`
          : m.details.failed
            ? `failed, but not by the check's verdict: ${String(m.details.errorInstance)}`
            : `not found in ${BUDGET} programs`;
        expect(m.found, `${why} (seed ${seed})`).toBe(true);
      }
    });
});
