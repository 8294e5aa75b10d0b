//! The desk adapter's tables. Times are milliseconds since the epoch; ids are
//! UUID text, so PostgreSQL and SQLite share one schema.

use centralino_store::schema::{index, unique_index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, integer, string_len, string_len_null, text,
};

/// Migrator of the desk tables (its own migration table, beside the core one).
pub struct DeskMigrator;

impl MigratorTrait for DeskMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial), Box::new(Counters)]
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

struct Counters;

impl MigrationName for Counters {
    fn name(&self) -> &str {
        "desk_0002_counters"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Counters {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A ticket at the counter: who called it, when (the last call), how
        // often it was recalled, how it ended, where it was transferred, and
        // the phone to text when its turn is near (once).
        for col in [
            ColumnDef::new("agent").string_len(128).null().to_owned(),
            ColumnDef::new("called_at").big_integer().null().to_owned(),
            ColumnDef::new("recalls")
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new("disposition")
                .string_len(64)
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new("appointment_id")
                .string_len(36)
                .null()
                .to_owned(),
            ColumnDef::new("moved_to")
                .string_len(16)
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new("notify_phone")
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new("notified")
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("desk_tickets")
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        // Which agent sits at which counter: one agent per counter, one
        // counter per agent.
        manager
            .create_table(
                Table::create()
                    .table("desk_counters")
                    .if_not_exists()
                    .col(string_len("agent", 128).primary_key())
                    .col(string_len("site", 64))
                    .col(string_len("counter", 16))
                    .col(big_integer("opened_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "desk_counters",
                "desk_counters_place",
                &["site", "counter"],
            ))
            .await?;
        // Booked slots; `code` is what the customer gives the kiosk.
        manager
            .create_table(
                Table::create()
                    .table("desk_appointments")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("site", 64))
                    .col(string_len("code", 16))
                    .col(string_len("service", 16))
                    .col(big_integer("starts_at"))
                    .col(big_integer("ends_at"))
                    .col(text("identifiers"))
                    .col(string_len_null("interaction_id", 36))
                    .col(big_integer_null("checked_in_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "desk_appointments",
                "desk_appointments_code",
                &["site", "code"],
            ))
            .await?;
        Ok(())
    }
}
