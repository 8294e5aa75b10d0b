//! Small helpers for services' migrations.

use sea_orm_migration::prelude::{Alias, Index, IndexCreateStatement};

/// `CREATE INDEX IF NOT EXISTS name ON table (cols…)`.
pub fn index(table: &str, name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(Alias::new(table)).if_not_exists();
    for c in cols {
        i.col(Alias::new(*c));
    }
    i.to_owned()
}

/// The same, unique.
pub fn unique_index(table: &str, name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut i = index(table, name, cols);
    i.unique();
    i
}
