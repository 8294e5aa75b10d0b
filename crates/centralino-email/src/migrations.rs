//! The email adapter's tables. Times are milliseconds since the epoch; ids are
//! UUID text, so PostgreSQL and SQLite share one schema.

use centralino_store::schema::{index, unique_index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, binary, binary_null, boolean, integer, string_len, string_len_null, text,
    text_null,
};

/// Migrator of the email tables (its own migration table, beside the core one).
pub struct EmailMigrator;

impl MigratorTrait for EmailMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_email_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "email_0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Where each mailbox's import stands: everything up to `last_uid` of
        // `uidvalidity` is committed.
        manager
            .create_table(
                Table::create()
                    .table("email_positions")
                    .if_not_exists()
                    .col(string_len("mailbox", 64).primary_key())
                    .col(text("source"))
                    .col(big_integer("uidvalidity"))
                    .col(big_integer("last_uid"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        // Every UID seen, with the message it was (a duplicate points at the first
        // copy), and whether it is flagged/moved on the server yet.
        manager
            .create_table(
                Table::create()
                    .table("email_uids")
                    .if_not_exists()
                    .col(string_len("mailbox", 64))
                    .col(big_integer("uidvalidity"))
                    .col(big_integer("uid"))
                    .col(string_len("message_id", 36))
                    .col(big_integer("outbox_mark"))
                    .col(boolean("flagged"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("mailbox"))
                            .col(Alias::new("uidvalidity"))
                            .col(Alias::new("uid")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "email_uids",
                "email_uids_unflagged",
                &["mailbox", "flagged", "outbox_mark"],
            ))
            .await?;
        // Every message, inbound and outbound. `dedupe_key` makes one email one
        // message whatever UID or mailbox it comes through again.
        manager
            .create_table(
                Table::create()
                    .table("email_messages")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("dedupe_key", 400))
                    .col(string_len_null("interaction_id", 36))
                    .col(string_len("direction", 8))
                    .col(string_len("mailbox", 64))
                    .col(string_len_null("rfc_id", 256))
                    .col(string_len("outcome", 16))
                    .col(text_null("detail"))
                    .col(big_integer("size"))
                    .col(binary_null("raw"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "email_messages",
                "email_messages_dedupe",
                &["dedupe_key"],
            ))
            .await?;
        manager
            .create_index(index(
                "email_messages",
                "email_messages_rfc_id",
                &["rfc_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("email_attachments")
                    .if_not_exists()
                    .col(string_len("message_id", 36))
                    .col(integer("position"))
                    .col(string_len("name", 256))
                    .col(string_len("content_type", 128))
                    .col(big_integer("size"))
                    .col(binary("content"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("message_id"))
                            .col(Alias::new("position")),
                    )
                    .to_owned(),
            )
            .await?;
        // One conversation per interaction: where answers go and how they thread.
        manager
            .create_table(
                Table::create()
                    .table("email_threads")
                    .if_not_exists()
                    .col(string_len("interaction_id", 36).primary_key())
                    .col(string_len("token", 16))
                    .col(string_len("mailbox", 64))
                    .col(string_len_null("customer", 320))
                    .col(text("subject"))
                    .col(text("refs"))
                    .col(string_len_null("last_inbound", 256))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "email_threads",
                "email_threads_token",
                &["token"],
            ))
            .await?;
        // Messages to send, built once so every attempt sends the same bytes.
        manager
            .create_table(
                Table::create()
                    .table("email_outbound")
                    .if_not_exists()
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("interaction_id", 36))
                    .col(string_len("mailbox", 64))
                    .col(string_len("kind", 8))
                    .col(string_len("sender", 320))
                    .col(string_len("recipient", 320))
                    .col(binary("raw"))
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
                "email_outbound",
                "email_outbound_due",
                &["status", "next_attempt_at"],
            ))
            .await?;
        Ok(())
    }
}
