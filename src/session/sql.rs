//! The SQL session store (the embedded default; also works on PostgreSQL).

use sea_orm::DatabaseConnection;

use super::store::StoreError;

/// Sessions in the `sessions` table of the application database.
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
}

impl SqlStore {
    pub fn new(db: DatabaseConnection) -> Self {
        SqlStore { db }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }
}
