//! The routing service's tables. Definitions are stored as their protobuf
//! encoding so what an admin sent is what comes back, field for field.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, integer, string_len, string_len_null, text,
};

/// Migrator of the routing tables (its own migration table, beside the core one).
pub struct RoutingMigrator;

impl MigratorTrait for RoutingMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(QueueFigures),
            Box::new(FileOwned),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_routing_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "routing_0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("routing_skills")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(text("description"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("routing_queues")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(binary("definition"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("routing_agents")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(binary("definition"))
                    .col(string_len("presence", 16))
                    .col(string_len("reason", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("routing_interactions")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("queue", 64))
                    .col(string_len("channel", 16))
                    .col(integer("priority"))
                    .col(big_integer("arrived_at"))
                    .col(string_len_null("preferred_agent", 64))
                    .col(string_len("state", 16))
                    .col(string_len_null("agent", 64))
                    .col(big_integer_null("offer_expires_at"))
                    .col(big_integer_null("assigned_at"))
                    .col(binary("interaction"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

/// Queue figures survive a takeover (`routing_queue_figures`).
struct QueueFigures;

impl MigrationName for QueueFigures {
    fn name(&self) -> &str {
        "routing_0002_queue_figures"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for QueueFigures {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("routing_queue_figures")
                    .if_not_exists()
                    .col(string_len("queue", 64).primary_key())
                    .col(big_integer("entered"))
                    .col(big_integer("answered"))
                    .col(big_integer("answered_in_sl"))
                    .col(big_integer("abandoned"))
                    .col(big_integer("closed"))
                    .col(big_integer("overflowed"))
                    .col(big_integer("wait_answered_ms"))
                    .col(big_integer_null("aht_ms"))
                    .to_owned(),
            )
            .await
    }
}

/// Which definitions the configuration file owns (`routing_file_owned`):
/// the API may not change them, and a start whose file no longer lists one
/// deletes it.
struct FileOwned;

impl MigrationName for FileOwned {
    fn name(&self) -> &str {
        "routing_0003_file_owned"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for FileOwned {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("routing_file_owned")
                    .if_not_exists()
                    .col(string_len("kind", 8))
                    .col(string_len("name", 64))
                    .primary_key(Index::create().col("kind").col("name"))
                    .to_owned(),
            )
            .await
    }
}
