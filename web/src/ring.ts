// The ring for open offers: a looping two-tone ring made with WebAudio (no
// audio file), played only after the agent enabled sound once this session
// (browsers block audio until a click). The same click asks for permission
// to show desktop notifications.
import { signal } from '@preact/signals';

declare global {
  interface Window {
    /** True while the ring plays (for tests). */
    __centralinoRinging: boolean;
  }
}

const KEY = 'centralino.sound';
export const soundOn = signal<boolean>(sessionStorage.getItem(KEY) === 'on');
window.__centralinoRinging = false;

let audio: AudioContext | null = null;
let tone: { stop(): void } | null = null;
let waitingForGesture = false;

/** From a click: enables the ring and asks for notification permission. */
export async function enableSound(): Promise<void> {
  sessionStorage.setItem(KEY, 'on');
  soundOn.value = true;
  audio ??= new AudioContext();
  await audio.resume();
  if ('Notification' in window && Notification.permission === 'default') {
    await Notification.requestPermission();
  }
}

export function disableSound(): void {
  sessionStorage.removeItem(KEY);
  soundOn.value = false;
}

/** Rings 0.4 s on, 0.2 s off, 0.4 s on, then 2 s of silence, over and over. */
function startTone(ctx: AudioContext): { stop(): void } {
  const gain = ctx.createGain();
  gain.gain.value = 0;
  gain.connect(ctx.destination);
  const oscillators = [440, 480].map((hz) => {
    const o = ctx.createOscillator();
    o.frequency.value = hz;
    o.connect(gain);
    o.start();
    return o;
  });
  const burst = () => {
    const t = ctx.currentTime;
    for (const [on, off] of [
      [0, 0.4],
      [0.6, 1.0],
    ] as const) {
      gain.gain.setValueAtTime(0.12, t + on);
      gain.gain.setValueAtTime(0, t + off);
    }
  };
  burst();
  const timer = setInterval(burst, 3000);
  return {
    stop() {
      clearInterval(timer);
      gain.gain.cancelScheduledValues(ctx.currentTime);
      for (const o of oscillators) o.stop();
      gain.disconnect();
    },
  };
}

/**
 * Starts or stops the ring. After a reload the audio may start only at the
 * page's first click or key, so it waits for one.
 */
export function setRinging(on: boolean): void {
  window.__centralinoRinging = on;
  if (!on) {
    tone?.stop();
    tone = null;
    return;
  }
  if (tone) return;
  if (!audio && !navigator.userActivation?.hasBeenActive) {
    if (waitingForGesture) return;
    waitingForGesture = true;
    const later = () => {
      waitingForGesture = false;
      removeEventListener('pointerdown', later);
      removeEventListener('keydown', later);
      if (window.__centralinoRinging) setRinging(true);
    };
    addEventListener('pointerdown', later);
    addEventListener('keydown', later);
    return;
  }
  audio ??= new AudioContext();
  void audio.resume();
  tone = startTone(audio);
}

/** A desktop notification, if the agent allowed them. */
export function notify(title: string, body: string, tag: string, onClick: () => void): void {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const n = new Notification(title, { body, tag });
  n.onclick = () => {
    window.focus();
    onClick();
    n.close();
  };
}
