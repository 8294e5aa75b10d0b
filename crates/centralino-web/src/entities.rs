//! sea-orm entities of the web tables.

/// People who log in to the browser application.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "web_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub display_name: String,
        /// `agent`, `supervisor`, `admin`, …
        pub role: String,
        /// PHC string (`$argon2id$v=19$…`).
        pub password_hash: String,
        pub enabled: bool,
        /// `it` or `en`.
        pub language: String,
        pub failed_logins: i32,
        /// Milliseconds since the epoch.
        pub locked_until: Option<i64>,
        pub created_at: i64,
        /// Sessions opened before it are over (ms since the epoch; 0: never changed).
        pub password_changed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Browser sessions, by the SHA-256 of their token (the token itself is
/// only ever in the user's cookie).
pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "web_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub user: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
