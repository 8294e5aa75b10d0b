// Users who log in to the browser application (UserAdminService).
import { useState } from 'preact/hooks';
import { userAdmin } from '../api';
import { millis } from '../clock';
import { locale, t } from '../i18n';
import { Role } from '../gen/centralino/v1/ops_pb';
import type { User } from '../gen/centralino/v1/web_pb';
import { change, useList } from './common';

const ROLES = [Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.INTEGRATOR, Role.KIOSK];

function roleName(r: Role): string {
  const keys = {
    [Role.AGENT]: 'roleAgent',
    [Role.SUPERVISOR]: 'roleSupervisor',
    [Role.ADMIN]: 'roleAdmin',
    [Role.INTEGRATOR]: 'roleIntegrator',
    [Role.KIOSK]: 'roleKiosk',
    [Role.UNSPECIFIED]: 'roleNone',
  } as const;
  return t(keys[r]);
}

function date(u: User['createdAt']): string {
  const ms = millis(u);
  return ms === undefined ? '' : new Date(ms).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'short' });
}

function CreateUser({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [role, setRole] = useState(Role.AGENT);
  const [password, setPassword] = useState('');
  const [language, setLanguage] = useState('it');
  async function submit(e: Event) {
    e.preventDefault();
    const ok = await change(
      () => userAdmin.createUser({ name: name.trim(), displayName: displayName.trim(), role, password, language }),
      t('userCreated', { name }),
    );
    if (ok) {
      setName('');
      setDisplayName('');
      setPassword('');
      onDone();
    }
  }
  return (
    <form class="card form-grid" onSubmit={submit} aria-labelledby="new-user-title">
      <h2 id="new-user-title" class="full">
        {t('newUser')}
      </h2>
      <label for="nu-name">{t('userName')}</label>
      <input id="nu-name" data-testid="new-user-name" required pattern="[a-z0-9][a-z0-9._\-]{0,63}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <label for="nu-display">{t('displayName')}</label>
      <input id="nu-display" value={displayName} onInput={(e) => setDisplayName(e.currentTarget.value)} />
      <label for="nu-role">{t('role')}</label>
      <select id="nu-role" value={role} onChange={(e) => setRole(Number(e.currentTarget.value) as Role)}>
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {roleName(r)}
          </option>
        ))}
      </select>
      <label for="nu-password">{t('password')}</label>
      <input id="nu-password" type="password" autocomplete="new-password" required minLength={10} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      <label for="nu-language">{t('language')}</label>
      <select id="nu-language" value={language} onChange={(e) => setLanguage(e.currentTarget.value)}>
        <option value="it">Italiano</option>
        <option value="en">English</option>
      </select>
      <button type="submit" class="primary full" data-testid="create-user">
        {t('create')}
      </button>
    </form>
  );
}

function SetPassword({ users, onDone }: { users: User[]; onDone: () => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  async function submit(e: Event) {
    e.preventDefault();
    const who = name || users[0]?.name || '';
    if (await change(() => userAdmin.setPassword({ name: who, password }), t('passwordSet', { name: who }))) {
      setPassword('');
      onDone();
    }
  }
  return (
    <form class="card form-grid" onSubmit={submit} aria-labelledby="set-password-title">
      <h2 id="set-password-title" class="full">
        {t('setPassword')}
      </h2>
      <label for="sp-user">{t('userName')}</label>
      <select id="sp-user" value={name || users[0]?.name} onChange={(e) => setName(e.currentTarget.value)}>
        {users.map((u) => (
          <option key={u.name} value={u.name}>
            {u.name}
          </option>
        ))}
      </select>
      <label for="sp-password">{t('newPassword')}</label>
      <input id="sp-password" type="password" autocomplete="new-password" required minLength={10} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      <button type="submit" class="full">
        {t('setPassword')}
      </button>
    </form>
  );
}

export function Users() {
  const { items, reload } = useList(async () => (await userAdmin.listUsers({})).users);
  const toggle = (u: User) =>
    void change(
      () => userAdmin.setUserEnabled({ name: u.name, enabled: !u.enabled }),
      t(u.enabled ? 'userDisabled' : 'userEnabled', { name: u.name }),
    ).then((ok) => ok && reload());
  return (
    <div class="admin-grid">
      <section class="card" aria-labelledby="users-title">
        <h2 id="users-title">{t('users')}</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">{t('userName')}</th>
              <th scope="col">{t('displayName')}</th>
              <th scope="col">{t('role')}</th>
              <th scope="col">{t('language')}</th>
              <th scope="col">{t('state')}</th>
              <th scope="col">{t('createdAt')}</th>
              <th scope="col">{t('actions')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((u) => (
              <tr key={u.name} data-testid="user-row" data-user={u.name}>
                <td>{u.name}</td>
                <td>{u.displayName}</td>
                <td>{roleName(u.role)}</td>
                <td>{u.language}</td>
                <td>
                  {u.enabled ? t('enabled') : t('disabled')}
                  {u.lockedUntil && ` · ${t('lockedUntil', { when: date(u.lockedUntil) })}`}
                </td>
                <td>{date(u.createdAt)}</td>
                <td>
                  <button type="button" class="small" data-testid="toggle-user" onClick={() => toggle(u)}>
                    {u.enabled ? t('disable') : t('enable')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <div>
        <CreateUser onDone={reload} />
        {items.length > 0 && <SetPassword users={items} onDone={reload} />}
      </div>
    </div>
  );
}
