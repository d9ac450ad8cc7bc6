import { describe, expect, it } from 'vitest';
import { resourceLine, resourcesOf } from '../../cli/main.js';

describe("start's resources", () => {
  it('give the wall time, the peak RSS, and that peak less the main thread shared among the workers', () => {
    const peakMb = Math.round(process.resourceUsage().maxRSS / 1024);
    const r = resourcesOf(73_400, 2, 100 * 1024 * 1024);
    expect(r).toMatchObject({ seconds: 73.4, workers: 2, mainRssMb: 100 });
    expect(Math.abs(r.peakRssMb - peakMb)).toBeLessThanOrEqual(1);
    expect(Math.abs(r.perWorkerMb - Math.max(0, peakMb - 100) / 2)).toBeLessThanOrEqual(1);
    expect(resourceLine(r)).toBe(
      `73 s on 2 workers; peak RSS ${r.peakRssMb} MB, about ${r.perWorkerMb} MB a worker above the main thread's 100 MB`,
    );
  });
});
