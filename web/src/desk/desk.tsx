// The agent desktop: presence, one work list across channels, the selected
// item. Driven by AgentDeskService.Events; commands go through Act.
import { useEffect } from 'preact/hooks';
import { computed, effect } from '@preact/signals';
import { channelName } from '../channel';
import { t } from '../i18n';
import { notify, setRinging, soundOn } from '../ring';
import { Channel } from '../gen/centralino/v1/interaction_pb';
import type { LoginReply } from '../gen/centralino/v1/web_pb';
import { Detail } from './detail';
import { CounterForm } from './deskticket';
import { Presence } from './presence';
import { CheatSheet, cheatSheetOpen, useShortcuts } from './shortcuts';
import { agentStatus, offers, selected, selectedId, whenNewOffer } from './state';
import { startDeskStream } from './stream';
import { summary, WorkList } from './worklist';

const ringing = computed(() => soundOn.value && offers.value.length > 0);

export function Desk({ agent }: { agent: LoginReply }) {
  useEffect(() => {
    whenNewOffer((o) =>
      notify(
        t('newOffer', { channel: channelName(o.channel), queue: o.queue }),
        summary(o.interaction),
        o.interactionId,
        () => (selectedId.value = o.interactionId),
      ),
    );
    const stop = startDeskStream();
    const stopRing = effect(() => setRinging(ringing.value));
    const stopTitle = effect(() => {
      const n = offers.value.length;
      document.title = n > 0 ? `(${n}) Centralino` : 'Centralino';
    });
    return () => {
      stop();
      stopRing();
      stopTitle();
      setRinging(false);
      document.title = 'Centralino';
    };
  }, []);
  useShortcuts();

  const item = selected.value;
  const desk = agentStatus.value?.load.some((l) => l.channel === Channel.DESK && l.capacity > 0);
  return (
    <div class="desk">
      <h1 class="sr-only">{t('navDesk')}</h1>
      <div class="desk-side">
        <Presence />
        {desk && <CounterForm />}
        <WorkList />
        <button type="button" class="small" data-testid="shortcuts" onClick={() => (cheatSheetOpen.value = true)}>
          {t('shortcutsButton')}
        </button>
      </div>
      <div class="desk-main">
        {item ? <Detail key={item.id} item={item} agentName={agent.displayName || agent.user} /> : <p class="muted card">{t('nothingSelected')}</p>}
      </div>
      <CheatSheet />
    </div>
  );
}
