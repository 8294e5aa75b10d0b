//! Migrations of the shared tables (inbox, outbox, leadership epochs).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, binary, integer, pk_auto, string, string_len, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

/// Migrator for the tables every service uses. Its own migration table lets each
/// service's migrator live in the same database.
pub struct CoreMigrator;

impl MigratorTrait for CoreMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(InboxOutbox), Box::new(LeaderEpoch)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_core_migrations").into_iden()
    }
}

struct InboxOutbox;

impl MigrationName for InboxOutbox {
    fn name(&self) -> &str {
        "core_0001_inbox_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for InboxOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("centralino_inbox")
                    .if_not_exists()
                    .col(string_len("consumer", 64))
                    .col(string_len("message_id", 64))
                    .col(timestamp_with_time_zone("processed_at"))
                    .primary_key(Index::create().col("consumer").col("message_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("centralino_inbox_processed_at")
                    .table("centralino_inbox")
                    .col("processed_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("centralino_outbox")
                    .if_not_exists()
                    .col(pk_auto("id").big_integer())
                    .col(string_len("source", 64))
                    .col(string_len("exchange", 16))
                    .col(string("routing_key"))
                    .col(binary("envelope"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone_null("parked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("centralino_outbox_source_id")
                    .table("centralino_outbox")
                    .col("source")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

/// One row per leader-held service: the epoch of its current leadership,
/// raised by each instance that takes the lock, and checked in every write
/// transaction of the leader (see `leader::Fence`).
struct LeaderEpoch;

impl MigrationName for LeaderEpoch {
    fn name(&self) -> &str {
        "core_0002_leader_epoch"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LeaderEpoch {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("centralino_leader_epoch")
                    .if_not_exists()
                    .col(string_len("service", 64).primary_key())
                    .col(big_integer("epoch"))
                    .col(timestamp_with_time_zone("since"))
                    .to_owned(),
            )
            .await
    }
}
