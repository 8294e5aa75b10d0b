//! Consent changes that channel adapters ask for over the bus: an SMS opt-out
//! keyword becomes `history.record_consent` (a `RecordConsentRequest` on the
//! commands exchange), applied exactly like the gRPC call, with the envelope's
//! source as the actor. The request id makes a redelivery a no-op. Every
//! command is answered on the bus: `consent.<channel>.changed` carrying its
//! request id, or `command.refused` naming the field at fault.

use centralino_bus::{Delivery, EnvelopeExt as _, Handled, Handler};
use centralino_proto::v1;
use centralino_server::ApiError;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use crate::HistoryConfig;
use crate::writer::{Change, Command};

/// The consent-command consumer, run by the shared pipeline. While the store
/// is away a command is held, not spent toward the delivery limit (an
/// opt-out must not be dead-lettered by an outage).
pub(crate) struct ConsentCommands {
    pub cfg: HistoryConfig,
    pub db: DatabaseConnection,
    /// The refusals' write checks this instance still leads.
    pub fence: centralino_store::leader::Fence,
    pub tx: mpsc::Sender<Command>,
}

#[async_trait::async_trait]
impl Handler for ConsentCommands {
    type Input = ();

    fn parse(&self, _: &Delivery) -> Result<Option<()>, String> {
        // Decoded in `apply`: an unreadable payload is answered, not dropped.
        Ok(Some(()))
    }

    async fn handle(&self, (): (), delivery: &Delivery) -> Handled {
        match apply(&self.cfg, &self.db, &self.tx, delivery).await {
            Ok(()) => Handled::Done,
            Err(ApiError::Unavailable(what)) => Handled::Hold(what),
            Err(ApiError::Internal(what)) => Handled::Retry(what),
            Err(e) => {
                // Answered on the bus, logged by field, never by value: the
                // values are personal data.
                tracing::warn!(message = %delivery.envelope.message_id, error = %e, "history: consent command refused; answered with command.refused");
                match refuse(&self.db, &self.fence, delivery, &e).await {
                    Ok(()) => Handled::Done,
                    Err(store) if store.is_transient() => Handled::Hold(store.to_string()),
                    Err(store) => Handled::Retry(store.to_string()),
                }
            }
        }
    }
}

/// Publishes (through the outbox) the `command.refused` answering a consent
/// command that cannot be carried out.
async fn refuse(
    db: &DatabaseConnection,
    fence: &centralino_store::leader::Fence,
    delivery: &Delivery,
    why: &ApiError,
) -> Result<(), centralino_store::StoreError> {
    let request_id = delivery
        .envelope
        .decode::<v1::RecordConsentRequest>()
        .map(|r| r.request_id)
        .unwrap_or_default();
    let (key, envelope) = centralino_bus::command_refused(
        crate::SERVICE,
        &centralino_bus::keys::record_consent().name,
        &delivery.envelope.message_id,
        &request_id,
        why.code_name(),
        &why.to_string(),
    );
    let txn = fence.begin(db).await?;
    centralino_store::outbox::enqueue(&txn, crate::SERVICE, &key, &envelope).await?;
    txn.commit().await?;
    Ok(())
}

async fn apply(
    cfg: &HistoryConfig,
    db: &DatabaseConnection,
    tx: &mpsc::Sender<Command>,
    delivery: &Delivery,
) -> Result<(), ApiError> {
    let req = delivery
        .envelope
        .decode::<v1::RecordConsentRequest>()
        .map_err(|_| ApiError::invalid("payload", "is not a RecordConsentRequest"))?;
    let actor = match delivery.envelope.source.as_str() {
        "" => "bus".to_owned(),
        s => s.chars().filter(|c| !c.is_control()).take(64).collect(),
    };
    let (request_id, input) = crate::grpc::consent_input(cfg, db, req).await?;
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Change {
        actor,
        request_id,
        change: Change::Consent(input),
        reply,
    })
    .await
    .map_err(|_| ApiError::Unavailable("history".into()))?;
    answer
        .await
        .map_err(|_| ApiError::Unavailable("history".into()))?
        .map(|_| ())
}
