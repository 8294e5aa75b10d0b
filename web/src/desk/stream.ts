// The desk's event stream: numbered events applied once each, resumed after
// the last applied (epoch, seq) on every reconnect.
import { agentDesk } from '../api';
import type { DeskEvent } from '../gen/centralino/v1/web_pb';
import { keepStreaming } from '../stream';
import { apply, connection, reset } from './state';

declare global {
  interface Window {
    /** Times each (epoch, seq) was applied, keyed `epoch/seq`: a test checks none twice. */
    __centralinoApplied: Map<string, number>;
  }
}

window.__centralinoApplied ??= new Map();

let epoch = '';
let lastSeq = 0n;

function onEvent(ev: DeskEvent): void {
  if (ev.event.case !== 'update') return; // a heartbeat only proves the stream is alive
  const update = ev.event.value;
  const newEpoch = ev.epoch !== epoch;
  if (!newEpoch && ev.seq <= lastSeq) return;
  if (newEpoch && update.update.case !== 'snapshot') reset();
  epoch = ev.epoch;
  lastSeq = ev.seq;
  const key = `${ev.epoch}/${ev.seq}`;
  window.__centralinoApplied.set(key, (window.__centralinoApplied.get(key) ?? 0) + 1);
  apply(update);
}

/**
 * Opens the desk's stream; returns the function that closes it and forgets
 * the desk (the next login may be someone else).
 */
export function startDeskStream(): () => void {
  const stop = keepStreaming({
    open: (signal, onOpen) =>
      agentDesk.events({ epoch, afterSeq: lastSeq }, { signal, timeoutMs: 0, onHeader: onOpen }),
    onMessage: onEvent,
    idleMs: 40_000,
    staleMs: 20_000,
    state: connection,
  });
  return () => {
    stop();
    epoch = '';
    lastSeq = 0n;
    window.__centralinoApplied.clear();
    reset();
  };
}
