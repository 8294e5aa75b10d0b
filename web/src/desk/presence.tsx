// Presence, status with time in state, wrap-up, per-channel load, and the
// connection and sound controls.
import { signal } from '@preact/signals';
import { channelName } from '../channel';
import { ConnectionBadge } from '../connection';
import { useDeskHere } from './stream';
import { duration, now } from '../clock';
import { t } from '../i18n';
import { soundOn, enableSound, disableSound } from '../ring';
import { AgentPresence } from '../gen/centralino/v1/routing_pb';
import { endWrapUp, REASONS, setAvailable, setNotReady, setOffline } from './actions';
import { agentStatus, connection, statusSince } from './state';

/** The not-ready reason the agent picked (also used by the `n` shortcut). */
export const reason = signal<string>(REASONS[0]);

function statusText(status: string): string {
  switch (status) {
    case 'offline':
      return t('stOffline');
    case 'idle':
      return t('stIdle');
    case 'busy':
      return t('stBusy');
    case 'wrap-up':
      return t('stWrapUp');
    case 'not-ready':
      return t('stNotReady');
    default:
      return status || t('stUnknown');
  }
}

export function reasonText(r: string): string {
  const known: Record<string, Parameters<typeof t>[0]> = {
    break: 'rsBreak',
    lunch: 'rsLunch',
    training: 'rsTraining',
    meeting: 'rsMeeting',
    'after-call': 'rsAfterCall',
    coaching: 'rsCoaching',
    admin: 'rsAdmin',
    supervisor: 'rsSupervisor',
  };
  const key = known[r];
  return key ? t(key) : r;
}

function Sound() {
  return soundOn.value ? (
    <p class="sound">
      <span data-testid="sound-on">{t('soundOn')}</span>{' '}
      <button type="button" class="small" onClick={disableSound}>
        {t('soundOff')}
      </button>
    </p>
  ) : (
    <button type="button" data-testid="enable-sound" onClick={() => void enableSound()}>
      {t('enableSound')}
    </button>
  );
}

export function Presence() {
  const s = agentStatus.value;
  const since = now.value - statusSince.value;
  const wrapUp = s?.status === 'wrap-up';
  const presence = s?.presence ?? AgentPresence.UNSPECIFIED;
  return (
    <section class="card presence" aria-labelledby="presence-title">
      <h2 id="presence-title">{t('presence')}</h2>
      <ConnectionBadge state={connection.value} useHere={() => useDeskHere()} />
      <p class="status-line">
        <span data-testid="status" data-status={s?.status ?? ''}>
          {s ? statusText(s.status) : t('stUnknown')}
          {s?.reason ? ` · ${reasonText(s.reason)}` : ''}
        </span>{' '}
        <span class="muted" data-testid="time-in-state">
          {duration(since)}
        </span>
      </p>
      {wrapUp && (
        <div class="wrapup">
          <span>
            {t('wrapUp')}: <span data-testid="wrap-up-timer">{duration(since)}</span>
          </span>{' '}
          <button type="button" data-testid="end-wrap-up" onClick={() => void endWrapUp()}>
            {t('endWrapUp')}
          </button>
        </div>
      )}
      <div class="presence-buttons">
        <button
          type="button"
          class="primary"
          data-testid="presence-available"
          aria-pressed={presence === AgentPresence.AVAILABLE}
          onClick={() => void setAvailable()}
        >
          {t('available')}
        </button>
        <button
          type="button"
          data-testid="presence-offline"
          aria-pressed={presence === AgentPresence.OFFLINE}
          onClick={() => void setOffline()}
        >
          {t('goOffline')}
        </button>
      </div>
      <div class="presence-buttons">
        <label for="presence-reason">{t('notReadyReason')}</label>
        <select
          id="presence-reason"
          data-testid="presence-reason"
          value={reason.value}
          onChange={(e) => (reason.value = e.currentTarget.value)}
        >
          {REASONS.map((r) => (
            <option key={r} value={r}>
              {reasonText(r)}
            </option>
          ))}
        </select>
        <button
          type="button"
          data-testid="presence-not-ready"
          aria-pressed={presence === AgentPresence.NOT_READY}
          onClick={() => void setNotReady(reason.value)}
        >
          {t('notReady')}
        </button>
      </div>
      {s && s.load.length > 0 && (
        <ul class="load plain" aria-label={t('load')}>
          {s.load.map((l) => (
            <li key={l.channel} data-testid="load" data-channel={l.channel}>
              {channelName(l.channel)} <strong>{l.used}/{l.capacity}</strong>
            </li>
          ))}
        </ul>
      )}
      <Sound />
    </section>
  );
}
