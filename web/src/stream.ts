// Keeps a server stream open: a watchdog aborts it when nothing arrives for
// `idleMs`, any end or error reconnects with backoff (0.5 s doubling to
// 10 s), UNAUTHENTICATED ends the session instead, and the page coming back
// (visible, online, restored from the back-forward cache) checks it at once.
import { Code } from '@connectrpc/connect';
import type { Signal } from '@preact/signals';
import { isCode, reportSessionEnded } from './api';
import { showError } from './alert';

/** Refusals that retrying will not cure: shown, while retrying goes on. */
const lasting = [Code.PermissionDenied, Code.Unimplemented, Code.InvalidArgument, Code.FailedPrecondition, Code.NotFound];

export type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface StreamOptions<T> {
  /** Opens the stream (called again on each reconnect); `onOpen` when its headers arrive. */
  open(signal: AbortSignal, onOpen: () => void): AsyncIterable<T>;
  onMessage(message: T): void;
  /** Abort when nothing arrived for this long. */
  idleMs: number;
  /** On coming back to the page, reconnect if nothing arrived for this long. */
  staleMs: number;
  state: Signal<Connection>;
}

const FIRST_DELAY = 500;
const MAX_DELAY = 10_000;

/** Starts the stream; returns the function that stops it. */
export function keepStreaming<T>(o: StreamOptions<T>): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let wake: (() => void) | null = null;
  let immediate = false;
  let lastAt = 0;
  let delay = FIRST_DELAY;

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(id);
        wake = null;
        resolve();
      };
      const id = setTimeout(done, ms);
      wake = done;
    });
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      const c = new AbortController();
      controller = c;
      let watchdog = setTimeout(() => c.abort(), o.idleMs);
      try {
        const onOpen = () => {
          lastAt = Date.now();
          o.state.value = 'connected';
        };
        for await (const message of o.open(c.signal, onOpen)) {
          clearTimeout(watchdog);
          watchdog = setTimeout(() => c.abort(), o.idleMs);
          lastAt = Date.now();
          delay = FIRST_DELAY;
          o.state.value = 'connected';
          o.onMessage(message);
        }
      } catch (e) {
        if (!stopped && isCode(e, Code.Unauthenticated)) {
          stopped = true;
          reportSessionEnded();
        } else if (!stopped && lasting.some((code) => isCode(e, code))) {
          showError(e);
        }
      } finally {
        clearTimeout(watchdog);
        controller = null;
      }
      if (stopped) return;
      o.state.value = navigator.onLine ? 'reconnecting' : 'offline';
      if (immediate) {
        immediate = false;
      } else {
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_DELAY);
      }
    }
  }

  /** Reconnects now if waiting, or if `force` or the stream went quiet. */
  function check(force: boolean): void {
    if (stopped) return;
    if (wake) {
      wake();
    } else if (controller && (force || Date.now() - lastAt > o.staleMs)) {
      immediate = true;
      controller.abort();
    }
  }

  const onVisible = () => {
    if (document.visibilityState === 'visible') check(false);
  };
  const onOnline = () => check(true);
  const onOffline = () => {
    o.state.value = 'offline';
  };
  const onPageShow = (e: PageTransitionEvent) => check(e.persisted);

  document.addEventListener('visibilitychange', onVisible);
  addEventListener('online', onOnline);
  addEventListener('offline', onOffline);
  addEventListener('pageshow', onPageShow);
  o.state.value = 'connecting';
  void loop();

  return () => {
    stopped = true;
    controller?.abort();
    wake?.();
    document.removeEventListener('visibilitychange', onVisible);
    removeEventListener('online', onOnline);
    removeEventListener('offline', onOffline);
    removeEventListener('pageshow', onPageShow);
  };
}
