//! The transactional outbox: events are rows written in the same transaction as
//! the state change they describe, and a relay publishes them with confirms and
//! deletes them only after the broker confirmed. A crash between confirm and
//! delete republishes the row: consumers de-duplicate on the message id.

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, Envelope, Exchange};
use chrono::Utc;
use futures::StreamExt as _;
use prost::Message as _;
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
    exchange: Exchange,
    routing_key: &str,
    envelope: &Envelope,
) -> Result<(), StoreError> {
    let row = outbox::ActiveModel {
        source: Set(source.to_owned()),
        exchange: Set(exchange.to_string()),
        routing_key: Set(routing_key.to_owned()),
        envelope: Set(envelope.encode_to_vec()),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    outbox::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Rows of `source` not yet relayed.
pub async fn pending(db: &impl ConnectionTrait, source: &str) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait as _;
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Source.eq(source))
        .count(db)
        .await?)
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

    /// Relays one batch; returns how many rows were published.
    pub async fn relay_once(&self) -> Result<usize, StoreError> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::Source.eq(self.source.as_str()))
            .order_by_asc(outbox::Column::Id)
            .limit(self.batch)
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut decoded = Vec::with_capacity(rows.len());
        for row in &rows {
            let exchange = match row.exchange.as_str() {
                "events" => Exchange::Events,
                "commands" => Exchange::Commands,
                other => {
                    return Err(StoreError::CorruptOutbox {
                        id: row.id,
                        reason: format!("unknown exchange {other:?}"),
                    });
                }
            };
            let envelope = Envelope::decode(row.envelope.as_slice()).map_err(|e| {
                StoreError::CorruptOutbox {
                    id: row.id,
                    reason: e.to_string(),
                }
            })?;
            decoded.push((row.id, exchange, row.routing_key.as_str(), envelope));
        }
        // Publish the batch concurrently (the bus bounds the in-flight window), then
        // delete exactly the rows whose publish was confirmed.
        let results: Vec<(i64, Result<(), centralino_bus::BusError>)> =
            futures::stream::iter(decoded.iter())
                .map(|(id, exchange, key, env)| async move {
                    (*id, self.bus.publish(*exchange, key, env).await)
                })
                .buffered(128)
                .collect()
                .await;
        let mut confirmed = Vec::new();
        let mut first_error = None;
        for (id, r) in results {
            match r {
                Ok(()) => confirmed.push(id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !confirmed.is_empty() {
            outbox::Entity::delete_many()
                .filter(outbox::Column::Id.is_in(confirmed.iter().copied()))
                .exec(&self.db)
                .await?;
        }
        match first_error {
            Some(e) if confirmed.is_empty() => Err(e.into()),
            Some(e) => {
                tracing::warn!(source = %self.source, error = %e, "some outbox rows were not published, will retry");
                Ok(confirmed.len())
            }
            None => Ok(confirmed.len()),
        }
    }

    /// Relays until `shutdown` resolves, waking on [`waker`](Self::waker) or every poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            let wait = match self.relay_once().await {
                Ok(n) if n as u64 >= self.batch => Duration::ZERO,
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
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
