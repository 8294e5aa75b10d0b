// The selected work item: what the interaction says, channel controls, the
// composer (once held), and the customer.
import { ChannelBadge, identifierKind } from '../channel';
import { t } from '../i18n';
import { Channel, CustomerIdentifier_Kind, Direction } from '../gen/centralino/v1/interaction_pb';
import type { Interaction } from '../gen/centralino/v1/interaction_pb';
import type { InteractionRecord, MessageRecord } from '../gen/centralino/v1/history_pb';
import { Composer } from './composer';
import { useCustomer } from './customer';
import { CustomerPanel } from './customerpanel';
import { TicketControls } from './deskticket';
import { customerLeft, type WorkItem } from './state';
import { when } from './timeline';

/** Voice: the caller, and the call's state as routing's updates tell it. */
function VoiceInfo({ item, interaction }: { item: WorkItem; interaction: Interaction }) {
  const caller = interaction.identifiers.find((i) => i.kind === CustomerIdentifier_Kind.PHONE)?.value;
  const state =
    item.kind === 'offer' ? t('callRinging') : customerLeft.value.has(item.id) ? t('callEnded') : t('callConnected');
  return (
    <div class="voice">
      <p class="caller">
        {t('caller')}: <strong data-testid="caller">{caller ?? t('callerHidden')}</strong>
      </p>
      <p>
        {t('callState')}: <span data-testid="call-state">{state}</span>
      </p>
      {/* Call controls: hang-up and transfer of the call go here once the API has them. */}
      <p class="muted" data-testid="call-controls">
        {t('callControlsLater')}
      </p>
    </div>
  );
}

/** The newest message of this conversation, to quote in an email reply. */
function lastMessage(records: InteractionRecord[], interaction: Interaction): MessageRecord | undefined {
  const mine = records.filter(
    (r) => r.id === interaction.id || (interaction.conversationId && r.conversationId === interaction.conversationId),
  );
  const messages = mine.flatMap((r) => r.messages);
  return messages.find((m) => m.direction === Direction.INBOUND) ?? messages[0];
}

export function Detail({ item, agentName }: { item: WorkItem; agentName: string }) {
  const interaction = item.kind === 'offer' ? item.offer.interaction : item.held.interaction;
  const channel = item.kind === 'offer' ? item.offer.channel : item.held.channel;
  const queue = item.kind === 'offer' ? item.offer.queue : item.held.queue;
  const { view, more, reload } = useCustomer(interaction);
  const name = view.customer?.displayName || interaction?.attributes['customer_name'] || '';
  const attributes = Object.entries(interaction?.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div class="detail" data-testid="detail" data-interaction={item.id}>
      <section class="card" aria-labelledby="detail-title">
        <h2 id="detail-title">
          <ChannelBadge channel={channel} /> {interaction?.subject || t('noSubject')}
        </h2>
        <dl class="pairs">
          <div>
            <dt>{t('queue')}</dt>
            <dd>{queue}</dd>
          </div>
          {interaction && (
            <div>
              <dt>{t('created')}</dt>
              <dd>{when(interaction.createdAt)}</dd>
            </div>
          )}
          {interaction?.identifiers.map((i) => (
            <div key={`${i.kind}:${i.value}`}>
              <dt>{identifierKind(i.kind)}</dt>
              <dd>{i.value}</dd>
            </div>
          ))}
          {attributes.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
        {channel === Channel.VOICE && interaction && <VoiceInfo item={item} interaction={interaction} />}
        {channel === Channel.DESK && interaction && item.kind === 'held' && <TicketControls interaction={interaction} />}
      </section>
      {item.kind === 'held' && (
        <Composer
          key={item.id}
          a={item.held}
          customerName={name}
          agentName={agentName}
          quoteFrom={interaction ? lastMessage(view.timeline, interaction) : undefined}
        />
      )}
      {interaction && <CustomerPanel view={view} current={item.id} onMore={() => void more()} onReload={reload} />}
    </div>
  );
}
