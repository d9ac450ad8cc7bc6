/**
 * The upstream tree the host perf model follows: perf core and arch/x86/events/intel as the mediated vPMU series
 * left them for Linux v7.0 (the perf half of the series came through tip with the KVM merge). The model ports the
 * functions model/host names, as read at that tree; they are not pinned commit by commit as the KVM port is.
 */
export const HOST_PERF_BASE =
  'Linux v7.0-rc1 (perf core and arch/x86/events/intel with the mediated vPMU support; functions as read at that tree, not pinned one by one)';
