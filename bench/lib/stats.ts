import * as hdr from 'hdr-histogram-js';

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Latencies in milliseconds, recorded in microseconds in an HdrHistogram (3 significant digits). */
export class LatencyHistogram {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });

  recordMs(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  summary(): Percentiles {
    const at = (p: number): number => this.h.getValueAtPercentile(p) / 1000;
    return {
      count: this.h.totalCount,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      max: this.h.maxValue / 1000,
      mean: this.h.mean / 1000,
    };
  }
}
