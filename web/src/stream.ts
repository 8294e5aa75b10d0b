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

export type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'elsewhere';

export interface StreamOptions<T> {
  /** Opens the stream (called again on each reconnect); `onOpen` when its headers arrive. */
  open(signal: AbortSignal, onOpen: () => void): AsyncIterable<T>;
  onMessage(message: T): void;
  /** Abort when nothing arrived for this long. */
  idleMs: number;
  /** On coming back to the page, reconnect if nothing arrived for this long. */
  staleMs: number;
  state: Signal<Connection>;
  /**
   * A refusal that means another window took over (the desk: ABORTED): the
   * stream waits, state `elsewhere`, until `resume` is called (a click),
   * instead of taking the work back by itself.
   */
  pauseOn?: Code;
}

export interface StreamControl {
  stop(): void;
  /** Reconnects a stream paused on `pauseOn`. */
  resume(): void;
}

const FIRST_DELAY = 500;
const MAX_DELAY = 10_000;

/** Starts the stream. */
export function keepStreaming<T>(o: StreamOptions<T>): StreamControl {
  let stopped = false;
  let unpause: (() => void) | null = null;
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
        } else if (!stopped && o.pauseOn !== undefined && isCode(e, o.pauseOn)) {
          o.state.value = 'elsewhere';
          await new Promise<void>((resolve) => (unpause = resolve));
          unpause = null;
          immediate = true;
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
        // Jitter that only shortens, so desks do not all come back at once.
        await sleep(delay * (0.5 + Math.random() / 2));
        delay = Math.min(delay * 2, MAX_DELAY);
      }
    }
  }

  /** Reconnects now if waiting, or if `force` or the stream went quiet. */
  function check(force: boolean): void {
    if (stopped || unpause) return;
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
    if (!unpause) o.state.value = 'offline';
  };
  const onPageShow = (e: PageTransitionEvent) => check(e.persisted);

  document.addEventListener('visibilitychange', onVisible);
  addEventListener('online', onOnline);
  addEventListener('offline', onOffline);
  addEventListener('pageshow', onPageShow);
  o.state.value = 'connecting';
  void loop();

  const stop = () => {
    stopped = true;
    controller?.abort();
    wake?.();
    unpause?.();
    document.removeEventListener('visibilitychange', onVisible);
    removeEventListener('online', onOnline);
    removeEventListener('offline', onOffline);
    removeEventListener('pageshow', onPageShow);
  };
  return { stop, resume: () => unpause?.() };
}
