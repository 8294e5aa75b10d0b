// The visible message regions: errors (role=alert, the server's message)
// and notices (role=status, what just succeeded).
import { signal } from '@preact/signals';
import { errorMessage } from './api';

export const alertText = signal<string>('');
export const noticeText = signal<string>('');

export function showAlert(text: string): void {
  noticeText.value = '';
  alertText.value = text;
}

export function showError(e: unknown): void {
  showAlert(errorMessage(e));
}

export function showNotice(text: string): void {
  alertText.value = '';
  noticeText.value = text;
}

export function clearAlert(): void {
  alertText.value = '';
  noticeText.value = '';
}
