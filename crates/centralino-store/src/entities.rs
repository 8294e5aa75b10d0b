//! sea-orm entities of the shared tables.

/// Messages a consumer has processed, keyed by `(consumer, message_id)`.
pub mod inbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "centralino_inbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub processed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Events waiting to be published, written in the producer's transaction.
pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "centralino_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Service that wrote the row; each service relays its own.
        pub source: String,
        /// `events` or `commands`.
        pub exchange: String,
        pub routing_key: String,
        /// The encoded envelope.
        pub envelope: Vec<u8>,
        pub created_at: DateTimeUtc,
        /// Failed publish attempts so far.
        pub attempts: i32,
        /// Not retried before this time (backoff after a failure).
        pub next_attempt_at: DateTimeUtc,
        pub last_error: Option<String>,
        /// Set when the row can never be published (corrupt or invalid): it is kept
        /// for inspection and skipped by the relay.
        pub parked_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
