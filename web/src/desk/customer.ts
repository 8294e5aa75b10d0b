// What history knows about the customer of a work item: found by the
// interaction's identifiers (routing's offer names no customer id), then
// their timeline, consent and merge suggestions.
import { useEffect, useState } from 'preact/hooks';
import { customerHistory, errorMessage } from '../api';
import type { Interaction } from '../gen/centralino/v1/interaction_pb';
import type {
  ConsentRecord,
  Customer,
  InteractionRecord,
  MergeSuggestion,
} from '../gen/centralino/v1/history_pb';

const PAGE = 20;

export interface CustomerView {
  loading: boolean;
  error: string;
  customer?: Customer;
  timeline: InteractionRecord[];
  nextPage: string;
  consent: ConsentRecord[];
  suggestions: MergeSuggestion[];
}

const empty: CustomerView = { loading: true, error: '', timeline: [], nextPage: '', consent: [], suggestions: [] };

async function findCustomer(interaction: Interaction): Promise<Customer | undefined> {
  for (const identifier of interaction.identifiers) {
    const r = await customerHistory.findCustomers({ identifier, pageSize: 1 });
    let c = r.customers[0];
    if (c?.mergedInto) c = await customerHistory.getCustomer({ customerId: c.mergedInto });
    if (c) return c;
  }
  return undefined;
}

/** Loads the customer behind `interaction`; `reload` and `more` page on. */
export function useCustomer(interaction: Interaction | undefined) {
  const [view, setView] = useState<CustomerView>(empty);
  const [generation, setGeneration] = useState(0);
  const id = interaction?.id;

  useEffect(() => {
    if (!interaction) return;
    let live = true;
    setView(empty);
    (async () => {
      // History may not have recorded a brand-new customer yet when the
      // offer arrives: look again for a few seconds before saying so.
      let customer = await findCustomer(interaction);
      for (let attempt = 0; !customer && live && interaction.identifiers.length > 0 && attempt < 10; attempt++) {
        await new Promise((ok) => setTimeout(ok, 1000));
        customer = await findCustomer(interaction);
      }
      if (!customer) return { ...empty, loading: false };
      const customerId = customer.id;
      // Consent and suggestions are extras: their failure leaves the timeline.
      const problems: string[] = [];
      const extra = <T,>(p: Promise<T>) =>
        p.catch((e: unknown) => {
          problems.push(errorMessage(e));
          return undefined;
        });
      const [timeline, consent, suggestions] = await Promise.all([
        customerHistory.listTimeline({ customerId, includeMessages: true, pageSize: PAGE }),
        extra(customerHistory.getConsent({ customerId })),
        extra(customerHistory.listMergeSuggestions({ pageSize: 100 })),
      ]);
      return {
        loading: false,
        error: problems.join(' · '),
        customer,
        timeline: timeline.interactions,
        nextPage: timeline.nextPageToken,
        consent: consent?.current ?? [],
        suggestions: (suggestions?.suggestions ?? []).filter(
          (s) => s.customerId === customerId || s.otherCustomerId === customerId,
        ),
      };
    })().then(
      (v) => live && setView(v),
      (e: unknown) => live && setView({ ...empty, loading: false, error: errorMessage(e) }),
    );
    return () => {
      live = false;
    };
  }, [id, generation]);

  async function more(): Promise<void> {
    const customerId = view.customer?.id;
    if (!customerId || !view.nextPage) return;
    try {
      const r = await customerHistory.listTimeline({
        customerId,
        includeMessages: true,
        pageSize: PAGE,
        pageToken: view.nextPage,
      });
      setView((v) => ({ ...v, timeline: [...v.timeline, ...r.interactions], nextPage: r.nextPageToken }));
    } catch (e) {
      setView((v) => ({ ...v, error: errorMessage(e) }));
    }
  }

  return { view, more, reload: () => setGeneration((g) => g + 1) };
}
