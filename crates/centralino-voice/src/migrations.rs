//! The voice adapter's table: one row per call that reached a queue (its
//! interaction), kept as the call's detail record. Times are milliseconds since
//! the epoch; ids are UUID text, so PostgreSQL and SQLite share one schema.

use centralino_store::schema::index;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len, string_len_null, text};

/// Migrator of the voice tables (its own migration table, beside the core one).
pub struct VoiceMigrator;

impl MigratorTrait for VoiceMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_voice_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "voice_0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `outcome` is empty while the call is up (or, for an outbound
        // callback, not yet placed); an inbound row still open when the
        // adapter starts belongs to a call its previous run lost.
        manager
            .create_table(
                Table::create()
                    .table("voice_calls")
                    .if_not_exists()
                    .col(string_len("interaction_id", 36).primary_key())
                    .col(string_len("sip_call_id", 255))
                    .col(string_len("direction", 8))
                    .col(string_len("caller", 64))
                    .col(string_len("dialled", 64))
                    .col(string_len("queue", 64))
                    .col(text("ivr_path"))
                    .col(string_len_null("agent", 64))
                    .col(string_len("outcome", 32))
                    .col(big_integer("created_at"))
                    .col(big_integer_null("answered_at"))
                    .col(big_integer_null("ended_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "voice_calls",
                "voice_calls_open",
                &["outcome", "direction"],
            ))
            .await?;
        Ok(())
    }
}
