//! sea-orm entities of the SMS tables (see `migrations`).

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

entity!(conversation, "sms_conversations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub interaction_id: String,
    pub phone: String,
    pub our_number: String,
    pub closed: bool,
    pub last_inbound_at: i64,
    pub last_message_at: i64,
    pub created_at: i64,
});

entity!(message, "sms_messages", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub dedupe_key: String,
    pub interaction_id: Option<String>,
    pub direction: String,
    pub provider_id: Option<String>,
    pub status: String,
    pub segments: i32,
    pub encoding: String,
    pub created_at: i64,
});

entity!(part, "sms_parts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub smsc_id: String,
    pub message_id: String,
    pub part: i32,
    pub status: String,
    pub error: String,
});

entity!(outbound, "sms_outbound", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub interaction_id: String,
    pub kind: String,
    pub purpose: String,
    pub sender: String,
    pub recipient: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
});

entity!(consent, "sms_consents", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub phone: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub purpose: String,
    pub revoked: bool,
    pub at: i64,
});
