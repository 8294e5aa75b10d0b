// Canned responses in both languages, with `{{name}}` (the customer's
// display name) and `{{agent}}` (the agent's name) filled in when inserted.
import type { Lang } from './i18n';

export interface Canned {
  id: string;
  title: Record<Lang, string>;
  body: Record<Lang, string>;
}

export const CANNED: Canned[] = [
  {
    id: 'greeting',
    title: { it: 'Saluto', en: 'Greeting' },
    body: {
      it: 'Gentile {{name}},\ngrazie per averci contattato. Sono {{agent}} e la aiuterò volentieri.',
      en: 'Dear {{name}},\nthank you for contacting us. I am {{agent}} and I will be glad to help.',
    },
  },
  {
    id: 'more-info',
    title: { it: 'Richiesta di informazioni', en: 'More information' },
    body: {
      it: 'Gentile {{name}},\nper procedere ci servirebbero alcune informazioni in più. Può indicarci il numero della pratica?',
      en: 'Dear {{name}},\nto go ahead we need a little more information. Could you tell us your case number?',
    },
  },
  {
    id: 'resolved',
    title: { it: 'Richiesta risolta', en: 'Request resolved' },
    body: {
      it: 'Gentile {{name}},\nla sua richiesta è stata risolta. Restiamo a disposizione.\n{{agent}}',
      en: 'Dear {{name}},\nyour request has been resolved. We remain at your disposal.\n{{agent}}',
    },
  },
  {
    id: 'callback',
    title: { it: 'Richiamata', en: 'Call back' },
    body: {
      it: 'Gentile {{name}}, la richiameremo al più presto. {{agent}}',
      en: 'Dear {{name}}, we will call you back as soon as possible. {{agent}}',
    },
  },
];

export function fillCanned(text: string, vars: { name: string; agent: string }): string {
  return text.replace(/\{\{(name|agent)\}\}/g, (_, k: 'name' | 'agent') => vars[k]);
}
