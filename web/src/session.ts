// Who is logged in: `Me` at page load, `Login`, `Logout`, the saved language.
import { signal } from '@preact/signals';
import { Code } from '@connectrpc/connect';
import { isCode, onSessionEnded, sessionClient } from './api';
import { showAlert, showError, clearAlert } from './alert';
import { setLang, t, type Lang } from './i18n';
import type { LoginReply } from './gen/centralino/v1/web_pb';
import { Role } from './gen/centralino/v1/ops_pb';
import type { Route } from './router';

/** `loading` until `Me` answers. */
export const user = signal<LoginReply | null | 'loading'>('loading');

function applyUser(reply: LoginReply): void {
  if (reply.language === 'it' || reply.language === 'en') setLang(reply.language);
  user.value = reply;
}

export async function loadMe(): Promise<void> {
  try {
    applyUser(await sessionClient.me({}));
  } catch (e) {
    if (!isCode(e, Code.Unauthenticated)) showError(e);
    user.value = null;
  }
}

export async function login(name: string, password: string): Promise<boolean> {
  try {
    const reply = await sessionClient.login({ user: name, password });
    clearAlert();
    applyUser(reply);
    return true;
  } catch (e) {
    if (isCode(e, Code.Unauthenticated)) showAlert(t('loginWrong'));
    else showError(e);
    return false;
  }
}

export async function logout(): Promise<void> {
  try {
    await sessionClient.logout({});
  } catch (e) {
    showError(e);
  }
  user.value = null;
}

/** Switches the language; once logged in, the server remembers it. */
export async function chooseLanguage(next: Lang): Promise<void> {
  setLang(next);
  const u = user.value;
  if (u && u !== 'loading') {
    try {
      applyUser(await sessionClient.setLanguage({ language: next }));
    } catch (e) {
      showError(e);
    }
  }
}

onSessionEnded(() => {
  if (user.value && user.value !== 'loading') {
    user.value = null;
    showAlert(t('sessionEnded'));
  }
});

/** The screens a role may open, the first being its home. */
export function routesFor(role: Role): Route[] {
  switch (role) {
    case Role.AGENT:
      return ['/desk'];
    case Role.SUPERVISOR:
      return ['/wall'];
    case Role.ADMIN:
      return ['/admin', '/wall'];
    default:
      return [];
  }
}

