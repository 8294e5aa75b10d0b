//! The history service's tables. Times are milliseconds since the epoch;
//! attribute maps and lists are JSON text, so PostgreSQL and SQLite share one
//! schema. PostgreSQL also gets full-text indexes (SQLite searches with LIKE).

use centralino_store::schema::index;
use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, string_len, string_len_null, text,
};

/// Migrator of the history tables (its own migration table, beside the core one).
pub struct HistoryMigrator;

impl MigratorTrait for HistoryMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(RequestCustomers),
            Box::new(KeyFingerprints),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_history_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "history_0001_initial"
    }
}

/// The expression PostgreSQL indexes and searches for interactions and messages.
pub(crate) const INTERACTION_TSV: &str =
    "to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(notes, ''))";
pub(crate) const MESSAGE_TSV: &str =
    "to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(body, ''))";

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("history_customers")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(text("display_name"))
                    .col(text("name_key"))
                    .col(text("attributes"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .col(string_len_null("merged_into", 36))
                    .col(big_integer_null("erased_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_customers",
                "history_customers_name",
                &["name_key", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_identifiers")
                    .if_not_exists()
                    .col(string_len("kind", 16))
                    .col(string_len("value", 256))
                    .col(string_len("customer_id", 36))
                    .col(big_integer("added_at"))
                    .primary_key(Index::create().col("kind").col("value"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_identifiers",
                "history_identifiers_customer",
                &["customer_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_interactions")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len_null("customer_id", 36))
                    .col(string_len("channel", 8))
                    .col(string_len("direction", 8))
                    .col(string_len("queue", 64))
                    .col(string_len("agent", 64))
                    .col(string_len("status", 16))
                    .col(big_integer("status_at"))
                    .col(text("disposition"))
                    .col(text("notes"))
                    .col(text("subject"))
                    .col(string_len("conversation_id", 64))
                    .col(big_integer("created_at"))
                    .col(big_integer("known"))
                    .col(big_integer_null("assigned_at"))
                    .col(big_integer_null("completed_at"))
                    .col(big_integer_null("ended_at"))
                    .col(big_integer("duration_ms"))
                    .col(string_len("outcome", 64))
                    .col(text("recording_ref"))
                    .col(text("ivr_path"))
                    .col(text("attributes"))
                    .col(text("resolved_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_interactions",
                "history_interactions_timeline",
                &["customer_id", "created_at", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_messages")
                    .if_not_exists()
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("interaction_id", 36))
                    .col(string_len("channel", 8))
                    .col(string_len("direction", 8))
                    .col(text("subject"))
                    .col(text("body"))
                    .col(text("sender"))
                    .col(text("recipient"))
                    .col(big_integer("at"))
                    .col(string_len("status", 16))
                    .col(big_integer("status_at"))
                    .col(text("error"))
                    .col(text("attributes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_messages",
                "history_messages_interaction",
                &["interaction_id", "at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_steps")
                    .if_not_exists()
                    .col(string_len("event_id", 64).primary_key())
                    .col(string_len("interaction_id", 36))
                    .col(string_len("kind", 16))
                    .col(string_len("queue", 64))
                    .col(string_len("agent", 64))
                    .col(text("reason"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_steps",
                "history_steps_interaction",
                &["interaction_id", "at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_consents")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("customer_id", 36))
                    .col(string_len("channel", 8))
                    .col(string_len("purpose", 64))
                    .col(string_len("state", 8))
                    .col(string_len("source", 64))
                    .col(text("note"))
                    .col(big_integer("at"))
                    .col(string_len("recorded_by", 128))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_consents",
                "history_consents_customer",
                &["customer_id", "channel", "purpose", "at"],
            ))
            .await?;
        // Opt-outs of erased customers, by a hash of the identifier: erasure
        // must not turn a "never contact me" back into "unknown".
        manager
            .create_table(
                Table::create()
                    .table("history_suppressions")
                    .if_not_exists()
                    .col(string_len("identifier_hash", 64))
                    .col(string_len("channel", 8))
                    .col(string_len("purpose", 64))
                    .col(big_integer("at"))
                    .primary_key(
                        Index::create()
                            .col("identifier_hash")
                            .col("channel")
                            .col("purpose"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_merges")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("survivor_id", 36))
                    .col(string_len("merged_id", 36))
                    .col(string_len("actor", 128))
                    .col(text("reason"))
                    .col(big_integer("at"))
                    .col(text("detail"))
                    .col(big_integer_null("undone_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_suggestions")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("customer_a", 36))
                    .col(string_len("customer_b", 36))
                    .col(text("identifiers"))
                    .col(string_len("interaction_id", 36))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "history_suggestions",
                    "history_suggestions_pair",
                    &["customer_a", "customer_b"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_audit")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("customer_id", 36))
                    .col(string_len("action", 16))
                    .col(string_len("actor", 128))
                    .col(text("reason"))
                    .col(text("detail"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "history_audit",
                "history_audit_customer",
                &["customer_id", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("history_requests")
                    .if_not_exists()
                    .col(string_len("actor", 128))
                    .col(string_len("request_id", 64))
                    .col(string_len("method", 32))
                    .col(binary("response"))
                    .col(big_integer("at"))
                    .primary_key(Index::create().col("actor").col("request_id"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS history_interactions_fts \
                 ON history_interactions USING gin (({INTERACTION_TSV}))"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS history_messages_fts \
                 ON history_messages USING gin (({MESSAGE_TSV}))"
            ))
            .await?;
        }
        Ok(())
    }
}

/// Which customers a stored request answer is about, so erasing one also
/// erases the answers kept for retries (they carry names and identifiers).
struct RequestCustomers;

impl MigrationName for RequestCustomers {
    fn name(&self) -> &str {
        "history_0002_request_customers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RequestCustomers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("history_requests")
                    .add_column(string_len_null("customers", 128))
                    .to_owned(),
            )
            .await?;
        // Answers kept before this cannot say whom they are about, so an
        // erasure could not find them: they go (they only serve retries).
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM history_requests")
            .await?;
        Ok(())
    }
}

/// The fingerprint of the suppression secret the opt-outs are kept under.
struct KeyFingerprints;

impl MigrationName for KeyFingerprints {
    fn name(&self) -> &str {
        "history_0003_key_fingerprints"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for KeyFingerprints {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("history_keys")
                    .if_not_exists()
                    .col(string_len("name", 32).primary_key())
                    .col(string_len("fingerprint", 64))
                    .to_owned(),
            )
            .await
    }
}
