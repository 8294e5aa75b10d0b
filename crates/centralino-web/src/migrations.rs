//! The web layer's tables: users and their sessions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, string_len, text,
};

/// Migrator of the web tables (its own migration table).
pub struct WebMigrator;

impl MigratorTrait for WebMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("centralino_web_migrations").into_iden()
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "web_0001_users_and_sessions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("web_users")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(text("display_name"))
                    .col(string_len("role", 16))
                    .col(text("password_hash"))
                    .col(boolean("enabled"))
                    .col(string_len("language", 8))
                    .col(integer("failed_logins"))
                    .col(big_integer_null("locked_until"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("web_sessions")
                    .if_not_exists()
                    .col(string_len("token_hash", 64).primary_key())
                    .col(string_len("user", 64))
                    .col(big_integer("created_at"))
                    .col(big_integer("expires_at"))
                    .col(big_integer_null("revoked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("web_sessions_by_user")
                    .table("web_sessions")
                    .if_not_exists()
                    .col("user")
                    .to_owned(),
            )
            .await
    }
}
