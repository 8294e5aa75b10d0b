// Administration: users, skills, queues, agents.
import { useState } from 'preact/hooks';
import { t } from '../i18n';
import { Agents } from './agents';
import { Queues } from './queues';
import { Skills } from './skills';
import { Users } from './users';

const TABS = [
  { id: 'users', label: 'users', view: Users },
  { id: 'skills', label: 'skills', view: Skills },
  { id: 'queues', label: 'queues', view: Queues },
  { id: 'agents', label: 'agents', view: Agents },
] as const;

export function Admin() {
  const [tab, setTab] = useState<(typeof TABS)[number]['id']>('users');
  const View = TABS.find((x) => x.id === tab)!.view;
  return (
    <div class="admin">
      <h1>{t('navAdmin')}</h1>
      <div class="tabs" role="group" aria-label={t('sections')}>
        {TABS.map((x) => (
          <button
            key={x.id}
            type="button"
            data-testid={`admin-${x.id}`}
            aria-pressed={tab === x.id}
            onClick={() => setTab(x.id)}
          >
            {t(x.label)}
          </button>
        ))}
      </div>
      <View />
    </div>
  );
}
