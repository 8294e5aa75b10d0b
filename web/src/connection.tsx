// The visible state of a live stream (desk events, wallboard).
import { t } from './i18n';
import type { Connection } from './stream';

export function ConnectionBadge({ state, useHere }: { state: Connection; useHere?: () => void }) {
  const text = {
    connecting: t('connConnecting'),
    connected: t('connConnected'),
    reconnecting: t('connReconnecting'),
    offline: t('connOffline'),
    elsewhere: t('connElsewhere'),
  }[state];
  return (
    <p class={`connection conn-${state}`} data-testid="connection" data-state={state} aria-live="polite">
      {text}
      {state === 'elsewhere' && useHere && (
        <>
          {' '}
          <button type="button" class="small" data-testid="use-here" onClick={useHere}>
            {t('useHere')}
          </button>
        </>
      )}
    </p>
  );
}
