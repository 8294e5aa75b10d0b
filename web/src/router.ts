// Path routing with the History API (the server answers index.html for any
// GET path without a dot).
import { signal } from '@preact/signals';

export type Route = '/login' | '/desk' | '/wall' | '/admin';

export const path = signal<string>(location.pathname);

export function navigate(to: string, replace = false): void {
  if (to === location.pathname) {
    path.value = to;
    return;
  }
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  path.value = to;
}

addEventListener('popstate', () => {
  path.value = location.pathname;
});
