//! sea-orm entities of the email tables (see `migrations`).

macro_rules! entity {
    ($module:ident, $table:literal, { $($body:tt)* }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model { $($body)* }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(position, "email_positions", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox: String,
    pub source: String,
    pub uidvalidity: i64,
    pub last_uid: i64,
    pub updated_at: i64,
});

entity!(uid, "email_uids", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub uidvalidity: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub uid: i64,
    pub message_id: String,
    pub outbox_mark: i64,
    pub flagged: bool,
});

entity!(message, "email_messages", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub dedupe_key: String,
    pub interaction_id: Option<String>,
    pub direction: String,
    pub mailbox: String,
    pub rfc_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub size: i64,
    pub raw: Option<Vec<u8>>,
    pub created_at: i64,
});

entity!(attachment, "email_attachments", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub content: Vec<u8>,
});

entity!(thread, "email_threads", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub interaction_id: String,
    pub token: String,
    pub mailbox: String,
    pub customer: Option<String>,
    pub subject: String,
    pub refs: String,
    pub last_inbound: Option<String>,
    pub created_at: i64,
});

entity!(outbound, "email_outbound", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub interaction_id: String,
    pub mailbox: String,
    pub kind: String,
    pub sender: String,
    pub recipient: String,
    pub raw: Vec<u8>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
});
