// The visible state of a live stream (desk events, wallboard).
import { t } from './i18n';
import type { Connection } from './stream';

export function ConnectionBadge({ state }: { state: Connection }) {
  const text = {
    connecting: t('connConnecting'),
    connected: t('connConnected'),
    reconnecting: t('connReconnecting'),
    offline: t('connOffline'),
  }[state];
  return (
    <p class={`connection conn-${state}`} data-testid="connection" data-state={state} aria-live="polite">
      {text}
    </p>
  );
}
