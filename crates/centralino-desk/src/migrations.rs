//! The desk adapter's tables. Times are milliseconds since the epoch; ids are
//! UUID text, so PostgreSQL and SQLite share one schema.

use centralino_store::schema::{index, unique_index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string_len, string_len_null};

/// Migrator of the desk tables (its own migration table, beside the core one).
pub struct DeskMigrator;

impl MigratorTrait for DeskMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_desk_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "desk_0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per ticket (its interaction). `(site, service, day,
        // number)` is unique: a number is given out once a day.
        manager
            .create_table(
                Table::create()
                    .table("desk_tickets")
                    .if_not_exists()
                    .col(string_len("interaction_id", 36).primary_key())
                    .col(string_len("site", 64))
                    .col(string_len("service", 16))
                    .col(string_len("day", 10))
                    .col(integer("number"))
                    .col(string_len("label", 16))
                    .col(string_len("state", 16))
                    .col(string_len_null("counter", 64))
                    .col(big_integer("arrived_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "desk_tickets",
                "desk_tickets_number",
                &["site", "service", "day", "number"],
            ))
            .await?;
        manager
            .create_index(index(
                "desk_tickets",
                "desk_tickets_open",
                &["site", "state"],
            ))
            .await?;
        Ok(())
    }
}
