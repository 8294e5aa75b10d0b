// The login form.
import { useState } from 'preact/hooks';
import { t } from './i18n';
import { login } from './session';

export function Login() {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    const ok = await login(name.trim(), password);
    setBusy(false);
    if (!ok) setPassword('');
  }

  return (
    <section class="login card" aria-labelledby="login-title">
      <h1 id="login-title">{t('loginTitle')}</h1>
      <form onSubmit={submit}>
        <label for="login-user">{t('userName')}</label>
        <input
          id="login-user"
          data-testid="login-user"
          autocomplete="username"
          autoFocus
          required
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <label for="login-password">{t('password')}</label>
        <input
          id="login-password"
          data-testid="login-password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        <button type="submit" class="primary" data-testid="login-submit" disabled={busy}>
          {busy ? t('loggingIn') : t('logIn')}
        </button>
      </form>
    </section>
  );
}
