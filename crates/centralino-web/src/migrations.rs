//! The web layer's tables: users and their sessions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, string_len, text,
};

/// Migrator of the web tables (its own migration table).
pub struct WebMigrator;

impl MigratorTrait for WebMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Initial), Box::new(PasswordChangedAt)]
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

/// When a user's password last changed: sessions opened before it end.
struct PasswordChangedAt;

impl MigrationName for PasswordChangedAt {
    fn name(&self) -> &str {
        "web_0002_password_changed_at"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PasswordChangedAt {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("web_users")
                    .add_column(big_integer("password_changed_at").default(0))
                    .to_owned(),
            )
            .await
    }
}
