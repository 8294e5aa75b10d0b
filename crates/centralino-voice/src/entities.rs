//! sea-orm entity of the voice table (see `migrations`).

pub mod call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "voice_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub interaction_id: String,
        pub sip_call_id: String,
        /// `inbound` (a customer called) or `outbound` (a callback to place).
        pub direction: String,
        pub caller: String,
        pub dialled: String,
        pub queue: String,
        pub ivr_path: String,
        pub agent: Option<String>,
        pub outcome: String,
        pub created_at: i64,
        pub answered_at: Option<i64>,
        pub ended_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
