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
        /// waiting, called, serving, served, no-show, closed.
        pub state: String,
        pub counter: Option<String>,
        pub arrived_at: i64,
        pub agent: Option<String>,
        /// The last call (a recall moves it).
        pub called_at: Option<i64>,
        pub recalls: i32,
        pub disposition: String,
        pub appointment_id: Option<String>,
        /// The service it waits for after a transfer (empty: `service`, the
        /// issuing one, which keeps the number).
        pub moved_to: String,
        /// E.164; texted once when the ticket is close to the head of the line.
        pub notify_phone: Option<String>,
        pub notified: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod counter {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "desk_counters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent: String,
        pub site: String,
        pub counter: String,
        pub opened_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod appointment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "desk_appointments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub site: String,
        pub code: String,
        pub service: String,
        pub starts_at: i64,
        pub ends_at: i64,
        /// JSON list of `[kind, normalized value]`.
        pub identifiers: String,
        pub interaction_id: Option<String>,
        pub checked_in_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
