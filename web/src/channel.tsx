// Channel names and symbols, shared by the desk and the timeline.
import { Channel } from './gen/centralino/v1/interaction_pb';
import { CustomerIdentifier_Kind } from './gen/centralino/v1/interaction_pb';
import { t } from './i18n';

const symbols: Record<Channel, string> = {
  [Channel.UNSPECIFIED]: '•',
  [Channel.VOICE]: '☎',
  [Channel.EMAIL]: '✉',
  [Channel.SMS]: '✆',
  [Channel.DESK]: '⌂',
  [Channel.CHAT]: '✎',
  [Channel.TASK]: '☑',
};

export function channelName(c: Channel): string {
  switch (c) {
    case Channel.VOICE:
      return t('chVoice');
    case Channel.EMAIL:
      return t('chEmail');
    case Channel.SMS:
      return t('chSms');
    case Channel.DESK:
      return t('chDesk');
    case Channel.CHAT:
      return t('chChat');
    case Channel.TASK:
      return t('chTask');
    default:
      return t('chOther');
  }
}

/** The channel's symbol (decorative) and name. */
export function ChannelBadge({ channel }: { channel: Channel }) {
  return (
    <span class={`channel ch-${Channel[channel]?.toLowerCase() ?? 'other'}`}>
      <span aria-hidden="true">{symbols[channel] ?? '•'}</span> {channelName(channel)}
    </span>
  );
}

export function identifierKind(k: CustomerIdentifier_Kind): string {
  switch (k) {
    case CustomerIdentifier_Kind.PHONE:
      return t('idPhone');
    case CustomerIdentifier_Kind.EMAIL:
      return t('idEmail');
    case CustomerIdentifier_Kind.CODICE_FISCALE:
      return t('idCodiceFiscale');
    case CustomerIdentifier_Kind.LOYALTY_CARD:
      return t('idLoyalty');
    case CustomerIdentifier_Kind.EXTERNAL_ID:
      return t('idExternal');
    default:
      return t('idOther');
  }
}

/** The channels an admin can pick, in display order. */
export const CHANNELS: Channel[] = [Channel.VOICE, Channel.EMAIL, Channel.SMS, Channel.DESK, Channel.CHAT, Channel.TASK];
