// The shell: top bar, alert region, and the screen the path names.
import { useEffect } from 'preact/hooks';
import { alertText, clearAlert, noticeText } from './alert';
import { lang, t } from './i18n';
import { navigate, path, type Route } from './router';
import { chooseLanguage, logout, routesFor, user } from './session';
import { Login } from './login';
import { Desk } from './desk/desk';
import { Wall } from './wall/wall';
import { Admin } from './admin/admin';
import type { LoginReply } from './gen/centralino/v1/web_pb';

const order: Route[] = ['/desk', '/wall', '/admin'];
const label = { '/desk': 'navDesk', '/wall': 'navWall', '/admin': 'navAdmin', '/login': 'login' } as const;

export function App() {
  const u = user.value;
  const allowed = u && u !== 'loading' ? routesFor(u.role) : [];
  const current = path.value;

  useEffect(() => {
    if (u === 'loading') return;
    if (u === null) {
      if (current !== '/login') navigate('/login', true);
    } else if (!allowed.includes(current as Route)) {
      navigate(allowed[0] ?? '/login', true);
    }
  }, [u, current]);

  return (
    <>
      <a class="skip" href="#main">
        {t('skipToMain')}
      </a>
      <TopBar user={u && u !== 'loading' ? u : null} allowed={allowed} />
      <AlertRegion />
      <main id="main" tabIndex={-1}>
        {u === 'loading' ? (
          <p class="muted">{t('loading')}</p>
        ) : u === null ? (
          <Login />
        ) : current === '/desk' && allowed.includes('/desk') ? (
          <Desk agent={u} />
        ) : current === '/wall' && allowed.includes('/wall') ? (
          <Wall />
        ) : current === '/admin' && allowed.includes('/admin') ? (
          <Admin />
        ) : allowed.length === 0 ? (
          <p>{t('noScreens')}</p>
        ) : null}
      </main>
    </>
  );
}

function TopBar({ user: u, allowed }: { user: LoginReply | null; allowed: Route[] }) {
  return (
    <header class="topbar">
      <span class="brand">Centralino</span>
      {u && (
        <nav aria-label={t('navigation')}>
          <ul>
            {order
              .filter((r) => allowed.includes(r))
              .map((r) => (
                <li key={r}>
                  <a
                    href={r}
                    aria-current={path.value === r ? 'page' : undefined}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(r);
                    }}
                  >
                    {t(label[r])}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
      )}
      <span class="spacer" />
      {u && (
        <span class="who" data-testid="user-name">
          {u.displayName || u.user}
        </span>
      )}
      <div class="lang" role="group" aria-label={t('language')}>
        {(['it', 'en'] as const).map((l) => (
          <button
            key={l}
            type="button"
            class="small"
            aria-pressed={lang.value === l}
            data-testid={`lang-${l}`}
            onClick={() => void chooseLanguage(l)}
          >
            {l.toUpperCase()}
          </button>
        ))}
      </div>
      {u && (
        <button type="button" class="small" data-testid="logout" onClick={() => void logout()}>
          {t('logout')}
        </button>
      )}
    </header>
  );
}

function AlertRegion() {
  const text = alertText.value;
  const notice = noticeText.value;
  return (
    <div class={text ? 'messages-bar alert' : notice ? 'messages-bar notice' : 'messages-bar empty'}>
      <p role="alert" data-testid="alert">
        {text}
      </p>
      <p role="status" data-testid="notice">
        {notice}
      </p>
      {(text || notice) && (
        <button type="button" class="small" onClick={clearAlert}>
          {t('dismiss')}
        </button>
      )}
    </div>
  );
}
