// A last-hour sparkline of one queue's waiting count, from samples this
// page kept.
import { t } from '../i18n';

export interface Sample {
  at: number;
  value: number;
}

const W = 140;
const H = 30;
export const WINDOW_MS = 3_600_000;

export function Sparkline({ samples, now }: { samples: Sample[]; now: number }) {
  const max = Math.max(1, ...samples.map((s) => s.value));
  const from = now - WINDOW_MS;
  const points = samples
    .map((s) => `${(((s.at - from) / WINDOW_MS) * W).toFixed(1)},${(H - 1 - (s.value / max) * (H - 2)).toFixed(1)}`)
    .join(' ');
  const values = samples.map((s) => s.value);
  const label =
    values.length > 0 ? t('sparkLabel', { min: Math.min(...values), max: Math.max(...values) }) : t('sparkEmpty');
  return (
    <svg class="sparkline" width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} data-testid="sparkline">
      <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} stroke="#c9ced6" stroke-width="1" />
      {samples.length > 1 && <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />}
    </svg>
  );
}
