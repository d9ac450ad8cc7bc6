import { describe, expect, it } from 'vitest';
import { resourceLine } from '../../cli/main.js';

describe("start's resource line", () => {
  it('gives the wall time, the peak RSS, and that peak less the main thread shared among the workers', () => {
    const peakMb = Math.round(process.resourceUsage().maxRSS / 1024);
    const line = resourceLine(73_400, 2, 100 * 1024 * 1024);
    const m = /^73 s on 2 workers; peak RSS (\d+) MB, about (\d+) MB a worker above the main thread's 100 MB$/.exec(
      line,
    );
    expect(m).not.toBeNull();
    expect(Math.abs(Number(m![1]) - peakMb)).toBeLessThanOrEqual(1);
    expect(Math.abs(Number(m![2]) - Math.max(0, peakMb - 100) / 2)).toBeLessThanOrEqual(1);
  });
});
