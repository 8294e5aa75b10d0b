// A clock ticking once a second for countdowns and timers, and formatting.
import { signal } from '@preact/signals';
import type { Timestamp } from '@bufbuild/protobuf/wkt';

export const now = signal<number>(Date.now());
setInterval(() => {
  now.value = Date.now();
}, 1000);

export function millis(ts: Timestamp | undefined): number | undefined {
  if (!ts) return undefined;
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}

/** `m:ss`, or `h:mm:ss` from an hour. */
export function duration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
