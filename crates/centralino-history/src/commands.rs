//! Consent changes that channel adapters ask for over the bus: an SMS opt-out
//! keyword becomes `history.record_consent` (a `RecordConsentRequest` on the
//! commands exchange), applied exactly like the gRPC call, with the envelope's
//! source as the actor. The request id makes a redelivery a no-op. Every
//! command is answered on the bus: `consent.<channel>.changed` carrying its
//! request id, or `command.refused` naming the field at fault.

use centralino_bus::{Delivery, EnvelopeExt as _, Exchange, Subscription};
use centralino_proto::v1;
use centralino_server::ApiError;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use crate::HistoryConfig;
use crate::writer::{Change, Command};

/// Routing key of the command, on the commands exchange.
pub const RECORD_CONSENT: &str = "history.record_consent";

/// Applies consent commands until `shutdown`.
pub(crate) async fn consume(
    cfg: HistoryConfig,
    db: DatabaseConnection,
    mut subscription: Subscription,
    tx: mpsc::Sender<Command>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let delivery = tokio::select! {
            d = subscription.next() => match d { Some(d) => d, None => return },
            () = &mut shutdown => return,
        };
        let mut delay = std::time::Duration::from_millis(500);
        let settled = loop {
            match apply(&cfg, &db, &tx, &delivery).await {
                Ok(()) => break delivery.ack().await,
                Err(ApiError::Unavailable(what)) | Err(ApiError::Internal(what)) => {
                    if db.ping().await.is_ok() {
                        tracing::warn!(%what, "history: consent command not applied; it will be redelivered");
                        break delivery.retry().await;
                    }
                    // The store is away: hold the command rather than spend its
                    // deliveries (an opt-out must not be dead-lettered by an outage).
                    tracing::warn!(
                        retry_in_ms = delay.as_millis() as u64,
                        "history: the database is unreachable; holding a consent command"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = &mut shutdown => break delivery.retry().await,
                    }
                    delay = (delay * 2).min(centralino_bus::backoff::PEER_MAX);
                }
                Err(e) => {
                    // Answered on the bus, logged by field, never by value:
                    // the values are personal data.
                    tracing::warn!(message = %delivery.envelope.message_id, error = %e, "history: consent command refused; answered with command.refused");
                    match refuse(&db, &delivery, &e).await {
                        Ok(()) => break delivery.ack().await,
                        Err(store) => {
                            tracing::warn!(error = %store, "history: the refusal of a consent command not written; it will be redelivered");
                            break delivery.retry().await;
                        }
                    }
                }
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "history: consent command not settled; the broker redelivers it");
        }
    }
}

/// Publishes (through the outbox) the `command.refused` answering a consent
/// command that cannot be carried out.
async fn refuse(
    db: &DatabaseConnection,
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
        RECORD_CONSENT,
        &delivery.envelope.message_id,
        &request_id,
        why.code_name(),
        &why.to_string(),
    );
    let txn = centralino_store::begin(db).await?;
    centralino_store::outbox::enqueue(&txn, crate::SERVICE, Exchange::Events, &key, &envelope)
        .await?;
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
        s => s.chars().take(64).collect(),
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
