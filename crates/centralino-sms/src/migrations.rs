//! The SMS adapter's tables. Times are milliseconds since the epoch; ids are
//! UUID text, so PostgreSQL and SQLite share one schema.

use centralino_store::schema::{index, unique_index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, integer, string_len, string_len_null, text, text_null,
};

/// Migrator of the SMS tables (its own migration table, beside the core one).
pub struct SmsMigrator;

impl MigratorTrait for SmsMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial), Box::new(RecipientOrder)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_sms_migrations").into_iden()
    }
}

struct Initial;

/// The sender takes a recipient's oldest queued message only: this index
/// answers "is there an older one?" without a scan.
struct RecipientOrder;

impl MigrationName for RecipientOrder {
    fn name(&self) -> &str {
        "sms_0002_recipient_order"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RecipientOrder {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "sms_outbound",
                "sms_outbound_recipient_order",
                &["recipient", "status", "created_at"],
            ))
            .await
    }
}

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "sms_0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One conversation per interaction: the customer's number, the number
        // they wrote to, and whether it is still open for follow-ups.
        manager
            .create_table(
                Table::create()
                    .table("sms_conversations")
                    .if_not_exists()
                    .col(string_len("interaction_id", 36).primary_key())
                    .col(string_len("phone", 32))
                    .col(string_len("our_number", 32))
                    .col(boolean("closed"))
                    .col(big_integer("last_inbound_at"))
                    .col(big_integer("last_message_at"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "sms_conversations",
                "sms_conversations_phone",
                &["phone", "closed", "last_message_at"],
            ))
            .await?;
        // Every message, inbound and outbound. `dedupe_key` makes a provider's
        // retry (same MessageSid) or a repeated send command one message.
        manager
            .create_table(
                Table::create()
                    .table("sms_messages")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("dedupe_key", 100))
                    .col(string_len_null("interaction_id", 36))
                    .col(string_len("direction", 8))
                    .col(string_len_null("provider_id", 64))
                    .col(string_len("status", 16))
                    .col(integer("segments"))
                    .col(string_len("encoding", 8))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "sms_messages",
                "sms_messages_dedupe",
                &["dedupe_key"],
            ))
            .await?;
        manager
            .create_index(index(
                "sms_messages",
                "sms_messages_provider",
                &["provider_id"],
            ))
            .await?;
        // The SMSC's id of each submitted part: receipts name them.
        manager
            .create_table(
                Table::create()
                    .table("sms_parts")
                    .if_not_exists()
                    .col(string_len("smsc_id", 64).primary_key())
                    .col(string_len("message_id", 36))
                    .col(integer("part"))
                    .col(string_len("status", 16))
                    .col(string_len("error", 32))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("sms_parts", "sms_parts_message", &["message_id"]))
            .await?;
        // Messages to send: a durable queue, so nothing accepted is lost while
        // the SMSC or the provider is away.
        manager
            .create_table(
                Table::create()
                    .table("sms_outbound")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("interaction_id", 36))
                    .col(string_len("kind", 16))
                    .col(string_len("purpose", 64))
                    .col(string_len("sender", 32))
                    .col(string_len("recipient", 32))
                    .col(text("body"))
                    .col(string_len("status", 8))
                    .col(integer("attempts"))
                    .col(big_integer("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "sms_outbound",
                "sms_outbound_due",
                &["status", "next_attempt_at"],
            ))
            .await?;
        // Opt-outs by number and purpose (`all` from the keywords), from the
        // keywords themselves and from history's `consent.sms.changed`.
        manager
            .create_table(
                Table::create()
                    .table("sms_consents")
                    .if_not_exists()
                    .col(string_len("phone", 32))
                    .col(string_len("purpose", 64))
                    .col(boolean("revoked"))
                    .col(big_integer("at"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("phone"))
                            .col(Alias::new("purpose")),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
