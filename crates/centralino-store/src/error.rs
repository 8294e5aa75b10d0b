//! Store errors.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url must start with postgres:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot connect to the database: {0}")]
    Connect(sea_orm::DbErr),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("leadership lock: {0}")]
    Leadership(String),
    #[error("bus: {0}")]
    Bus(#[from] centralino_bus::BusError),
}
