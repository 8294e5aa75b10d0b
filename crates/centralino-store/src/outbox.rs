//! The transactional outbox: events are rows written in the same transaction as
//! the state change they describe, and a relay publishes them with confirms and
//! deletes them only after the broker confirmed. A crash between confirm and
//! delete republishes the row: consumers de-duplicate on the message id.

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, BusError, Envelope, Exchange};
use chrono::Utc;
use futures::StreamExt as _;
use prost::Message as _;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tokio::sync::Notify;

use crate::StoreError;
use crate::entities::outbox;

/// Writes `envelope` to the outbox of `source` inside the caller's transaction.
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    source: &str,
    key: &centralino_bus::Key,
    envelope: &Envelope,
) -> Result<(), StoreError> {
    enqueue_many(txn, source, &[(key.clone(), envelope.clone())]).await
}

/// Writes many envelopes to the outbox of `source` in as few statements as
/// [`crate::chunks`] allows, inside the caller's transaction, in order.
pub async fn enqueue_many(
    txn: &impl ConnectionTrait,
    source: &str,
    rows: &[(centralino_bus::Key, Envelope)],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let size = |(key, envelope): &(centralino_bus::Key, Envelope)| {
        crate::chunks::text_row(&[source, &key.name]) + envelope.encoded_len() + 64
    };
    for chunk in crate::chunks::by_size(rows, 500, size) {
        let models = chunk.iter().map(|(key, envelope)| outbox::ActiveModel {
            source: Set(source.to_owned()),
            exchange: Set(key.exchange.to_string()),
            routing_key: Set(key.name.clone()),
            envelope: Set(envelope.encode_to_vec()),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            parked_at: Set(None),
            ..Default::default()
        });
        outbox::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The highest outbox row id of `source` visible to `db` (call it inside the
/// transaction that enqueued, after enqueueing): once [`oldest_pending`] is past
/// it, everything that transaction wrote has been confirmed by the broker.
pub async fn mark(db: &impl ConnectionTrait, source: &str) -> Result<i64, StoreError> {
    let row = outbox::Entity::find()
        .filter(outbox::Column::Source.eq(source))
        .order_by_desc(outbox::Column::Id)
        .select_only()
        .column(outbox::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(row.unwrap_or(0))
}

/// The lowest id of `source` still waiting to be published (parked rows, which
/// never will be, not included); `None` when everything was published.
pub async fn oldest_pending(
    db: &impl ConnectionTrait,
    source: &str,
) -> Result<Option<i64>, StoreError> {
    let row = outbox::Entity::find()
        .filter(outbox::Column::Source.eq(source))
        .filter(outbox::Column::ParkedAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .select_only()
        .column(outbox::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(row)
}

/// Rows of `source` still to be relayed (parked rows not included).
pub async fn pending(db: &impl ConnectionTrait, source: &str) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait as _;
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Source.eq(source))
        .filter(outbox::Column::ParkedAt.is_null())
        .count(db)
        .await?)
}

/// Rows of `source` that can never be published, kept for inspection.
pub async fn parked(
    db: &impl ConnectionTrait,
    source: &str,
) -> Result<Vec<outbox::Model>, StoreError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Source.eq(source))
        .filter(outbox::Column::ParkedAt.is_not_null())
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await?)
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Confirmed by the broker and removed.
    pub published: usize,
    /// Failed for now (broker down, no queue bound yet); retried after a backoff.
    pub deferred: usize,
    /// Can never be published; set aside.
    pub parked: usize,
}

/// Backoff before retrying a row that failed `attempts` times: 1 s doubling,
/// at most [`centralino_bus::backoff::PEER_MAX`], so rows held while the
/// broker was down go out within seconds of its return, however long it was
/// away.
fn retry_delay(attempts: i32) -> chrono::Duration {
    let secs = 1i64 << attempts.clamp(0, 9);
    let max = centralino_bus::backoff::PEER_MAX.as_secs() as i64;
    chrono::Duration::seconds(secs.min(max))
}

/// Publishes one service's outbox rows, oldest first.
pub struct OutboxRelay {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    source: String,
    batch: u64,
    wake: Arc<Notify>,
    poll: Duration,
}

impl OutboxRelay {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn Bus>, source: impl Into<String>) -> Self {
        Self {
            db,
            bus,
            source: source.into(),
            batch: 256,
            wake: Arc::new(Notify::new()),
            poll: Duration::from_millis(500),
        }
    }

    /// Call [`Notify::notify_one`] on this after committing outbox rows so the relay
    /// publishes at once instead of at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Relays one batch of due rows, oldest first. A row that fails is retried later
    /// without holding up the rows behind it; a row that can never be published is
    /// parked.
    pub async fn relay_once(&self) -> Result<RelayReport, StoreError> {
        let now = Utc::now();
        let rows = outbox::Entity::find()
            .filter(outbox::Column::Source.eq(self.source.as_str()))
            .filter(outbox::Column::ParkedAt.is_null())
            .filter(outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(outbox::Column::Id)
            .limit(self.batch)
            .all(&self.db)
            .await?;
        let mut report = RelayReport::default();
        let mut sendable = Vec::with_capacity(rows.len());
        for row in &rows {
            let exchange = match row.exchange.as_str() {
                "events" => Ok(Exchange::Events),
                "commands" => Ok(Exchange::Commands),
                other => Err(format!("unknown exchange {other:?}")),
            };
            let envelope = Envelope::decode(row.envelope.as_slice())
                .map_err(|e| format!("corrupt envelope: {e}"));
            match (exchange, envelope) {
                (Ok(exchange), Ok(envelope)) => {
                    sendable.push((row, exchange, envelope));
                }
                (Err(reason), _) | (_, Err(reason)) => {
                    self.park(row, &reason).await?;
                    report.parked += 1;
                }
            }
        }
        // Publish concurrently (the bus bounds the in-flight window), then settle
        // each row by its own outcome. The futures own what they use (boxed, so
        // the relay's own future stays `Send` for `tokio::spawn`).
        type Publish<'a> = std::pin::Pin<
            Box<
                dyn std::future::Future<Output = (&'a outbox::Model, Result<(), BusError>)>
                    + Send
                    + 'a,
            >,
        >;
        let publishes: Vec<Publish<'_>> = sendable
            .into_iter()
            .map(|(row, exchange, env)| {
                let bus = self.bus.clone();
                Box::pin(async move {
                    let r = bus.publish(exchange, &row.routing_key, &env).await;
                    (row, r)
                }) as Publish<'_>
            })
            .collect();
        let results: Vec<(&outbox::Model, Result<(), BusError>)> = futures::stream::iter(publishes)
            .buffered(128)
            .collect()
            .await;
        let mut confirmed = Vec::new();
        for (row, result) in results {
            match result {
                Ok(()) => confirmed.push(row.id),
                Err(BusError::InvalidMessage(reason)) => {
                    self.park(row, &reason).await?;
                    report.parked += 1;
                }
                Err(e) => {
                    let attempts = row.attempts.saturating_add(1);
                    outbox::Entity::update_many()
                        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
                        .col_expr(
                            outbox::Column::NextAttemptAt,
                            Expr::value(now + retry_delay(attempts)),
                        )
                        .col_expr(outbox::Column::LastError, Expr::value(e.to_string()))
                        .filter(outbox::Column::Id.eq(row.id))
                        .exec(&self.db)
                        .await?;
                    if attempts == 1 || attempts % 10 == 0 {
                        tracing::warn!(source = %self.source, row = row.id, attempts, error = %e, "outbox row not published, will retry");
                    }
                    report.deferred += 1;
                }
            }
        }
        if !confirmed.is_empty() {
            outbox::Entity::delete_many()
                .filter(outbox::Column::Id.is_in(confirmed.iter().copied()))
                .exec(&self.db)
                .await?;
        }
        report.published = confirmed.len();
        Ok(report)
    }

    async fn park(&self, row: &outbox::Model, reason: &str) -> Result<(), StoreError> {
        tracing::error!(source = %self.source, row = row.id, %reason, "outbox row can never be published, parked");
        outbox::Entity::update_many()
            .col_expr(outbox::Column::ParkedAt, Expr::value(Utc::now()))
            .col_expr(outbox::Column::LastError, Expr::value(reason.to_owned()))
            .filter(outbox::Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Relays until `shutdown` resolves, waking on [`waker`](Self::waker) or every poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            let wait = match self.relay_once().await {
                Ok(r) if (r.published + r.deferred + r.parked) as u64 >= self.batch => {
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    self.poll
                }
                Err(e) => {
                    tracing::warn!(source = %self.source, error = %e, "outbox relay failed, retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            // Shutdown is checked first, even while a backlog keeps every batch full.
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
