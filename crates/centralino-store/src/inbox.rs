//! The inbox: exactly-once effects on top of at-least-once delivery.
//!
//! ```text
//! let txn = centralino_store::begin(&db).await?;
//! if !inbox::claim(&txn, "history", &delivery.envelope.message_id).await? {
//!     txn.rollback().await?;           // already processed: just ack
//! } else {
//!     /* apply the change with &txn, outbox::enqueue(&txn, ...) */
//!     txn.commit().await?;
//! }
//! delivery.ack().await?;               // only after the commit
//! ```

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TryInsertResult};

use crate::StoreError;
use crate::entities::inbox;

/// Records that `consumer` processes `message_id` in the caller's transaction.
/// Returns `false` when it was processed before (the caller must skip the work).
/// Two concurrent claims of the same message: the second waits for the first
/// transaction and then returns `false`.
pub async fn claim(
    txn: &impl ConnectionTrait,
    consumer: &str,
    message_id: &str,
) -> Result<bool, StoreError> {
    let row = inbox::ActiveModel {
        consumer: Set(consumer.to_owned()),
        message_id: Set(message_id.to_owned()),
        processed_at: Set(Utc::now()),
    };
    let result = inbox::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
}

/// Forgets inbox entries older than `before` (redeliveries come within minutes;
/// keep a few days). Returns how many were removed.
/// Claims many messages at once in the caller's transaction and returns the
/// ids that were new (the others were processed before). The check is the
/// insert's own conflict on the primary key, so it costs the same on a table
/// of any size whatever the planner's statistics say (a `seen` lookup on a
/// table that grew since it was last analyzed can scan every row of the
/// consumer).
pub async fn claim_new(
    txn: &impl ConnectionTrait,
    consumer: &str,
    message_ids: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    use sea_orm::sea_query::{OnConflict, Query};
    use sea_orm::{Iden as _, Value};
    let now = Utc::now();
    let mut claimed = std::collections::HashSet::new();
    let size = |m: &String| crate::chunks::text_row(&[consumer, m]) + 16;
    for chunk in crate::chunks::by_size(message_ids, 500, size) {
        let mut insert = Query::insert();
        insert
            .into_table(inbox::Entity)
            .columns([
                inbox::Column::Consumer,
                inbox::Column::MessageId,
                inbox::Column::ProcessedAt,
            ])
            .on_conflict(
                OnConflict::columns([inbox::Column::Consumer, inbox::Column::MessageId])
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(inbox::Column::MessageId);
        for m in chunk {
            insert.values_panic([
                Value::from(consumer.to_owned()).into(),
                Value::from(m.clone()).into(),
                Value::from(now).into(),
            ]);
        }
        let stmt = txn.get_database_backend().build(&insert);
        for row in txn.query_all_raw(stmt).await? {
            claimed.insert(row.try_get::<String>("", &inbox::Column::MessageId.to_string())?);
        }
    }
    Ok(claimed)
}

/// Takes back claims made in the caller's transaction for messages that were
/// then refused, so a later replay of them is applied.
pub async fn release(
    txn: &impl ConnectionTrait,
    consumer: &str,
    message_ids: &[String],
) -> Result<(), StoreError> {
    let size = |m: &String| crate::chunks::text_row(&[m]);
    for chunk in crate::chunks::by_size(message_ids, 500, size) {
        inbox::Entity::delete_many()
            .filter(inbox::Column::Consumer.eq(consumer))
            .filter(inbox::Column::MessageId.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let res = inbox::Entity::delete_many()
        .filter(inbox::Column::ProcessedAt.lt(before))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
