// The desk's event stream: numbered events applied once each, resumed after
// the last applied (epoch, seq) on every reconnect.
import { Code } from '@connectrpc/connect';
import { agentDesk } from '../api';
import type { DeskEvent } from '../gen/centralino/v1/web_pb';
import { keepStreaming } from '../stream';
import { apply, connection, reset } from './state';

declare global {
  interface Window {
    /** Times each (epoch, seq) was applied, keyed `epoch/seq` (the last few thousand). */
    __centralinoApplied: Map<string, number>;
    /**
     * Times each (epoch, seq) arrived, before the check that skips what was
     * already applied: a test checks that a resume never sends one twice.
     */
    __centralinoReceived: Map<string, number>;
    /** Snapshots received, and streams opened, since the page loaded. */
    __centralinoSnapshots: number;
    __centralinoConnects: number;
  }
}

window.__centralinoApplied ??= new Map();
window.__centralinoReceived ??= new Map();
window.__centralinoSnapshots ??= 0;
window.__centralinoConnects ??= 0;

/** Entries kept in each of the maps above. */
const KEPT = 5_000;

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
  if (map.size > KEPT) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

let epoch = '';
let lastSeq = 0n;

/** Reconnects a desk stream that another window took over (a click on "use here"). */
export let useDeskHere: () => void = () => {};

function onEvent(ev: DeskEvent): void {
  if (ev.event.case !== 'update') return; // a heartbeat only proves the stream is alive
  const update = ev.event.value;
  count(window.__centralinoReceived, `${ev.epoch}/${ev.seq}`);
  if (update.update.case === 'snapshot') window.__centralinoSnapshots += 1;
  const newEpoch = ev.epoch !== epoch;
  if (!newEpoch && ev.seq <= lastSeq) return;
  if (newEpoch && update.update.case !== 'snapshot') reset();
  epoch = ev.epoch;
  lastSeq = ev.seq;
  count(window.__centralinoApplied, `${ev.epoch}/${ev.seq}`);
  apply(update);
}

/**
 * Opens the desk's stream; returns the function that closes it and forgets
 * the desk (the next login may be someone else).
 */
export function startDeskStream(): () => void {
  const control = keepStreaming({
    open: (signal, onOpen) => {
      window.__centralinoConnects += 1;
      return agentDesk.events({ epoch, afterSeq: lastSeq }, { signal, timeoutMs: 0, onHeader: onOpen });
    },
    onMessage: onEvent,
    idleMs: 40_000,
    staleMs: 20_000,
    state: connection,
    pauseOn: Code.Aborted,
  });
  useDeskHere = control.resume;
  return () => {
    control.stop();
    useDeskHere = () => {};
    epoch = '';
    lastSeq = 0n;
    window.__centralinoApplied.clear();
    window.__centralinoReceived.clear();
    reset();
  };
}
