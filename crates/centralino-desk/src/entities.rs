//! sea-orm entity of the desk tables (see `migrations`).

pub mod ticket {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "desk_tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub interaction_id: String,
        pub site: String,
        pub service: String,
        /// The site's calendar day, `YYYY-MM-DD`.
        pub day: String,
        pub number: i32,
        pub label: String,
        /// waiting, called, serving, served, no-show.
        pub state: String,
        pub counter: Option<String>,
        pub arrived_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
