//! The catalog in the sled store. Trees (values JSON, names free of NUL so `\0` separates them):
//! - `catalog_databases`: database → [`CatalogDatabase`].
//! - `catalog_tables`: database `\0` table → [`CatalogTable`].
//! - `catalog_history`: database `\0` table `\0` version (big-endian u32) → [`SchemaVersion`].

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalog::{CatalogDatabase, CatalogStore, CatalogTable, SchemaVersion};
use crate::error::StateError;
use crate::sled_store::{SledStore, decode, encode, key_prefix, sled_error};
use crate::store::check_name;

const DATABASE_NAME: &str = "database name";
const TABLE_NAME: &str = "table name";

impl SledStore {
    fn catalog_tree(&self, name: &str) -> Result<sled::Tree, StateError> {
        self.db()
            .open_tree(name)
            .map_err(|err| sled_error(self.dir(), err))
    }
}

fn table_key(database: &str, name: &str) -> Vec<u8> {
    key_prefix(&[database, name])
}

impl CatalogStore for SledStore {
    fn databases(&self) -> Result<Vec<CatalogDatabase>, StateError> {
        self.catalog_tree("catalog_databases")?
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|err| sled_error(self.dir(), err))?;
                decode(&value, || {
                    format!("catalog database {}", String::from_utf8_lossy(&key))
                })
            })
            .collect()
    }

    fn table(&self, database: &str, name: &str) -> Result<Option<CatalogTable>, StateError> {
        check_name(DATABASE_NAME, database)?;
        check_name(TABLE_NAME, name)?;
        let tables = self.catalog_tree("catalog_tables")?;
        match tables
            .get(table_key(database, name))
            .map_err(|err| sled_error(self.dir(), err))?
        {
            Some(bytes) => decode(&bytes, || format!("catalog table {database}.{name}")).map(Some),
            None => Ok(None),
        }
    }

    fn tables(&self, database: Option<&str>) -> Result<Vec<CatalogTable>, StateError> {
        let tables = self.catalog_tree("catalog_tables")?;
        let entries = match database {
            Some(database) => {
                check_name(DATABASE_NAME, database)?;
                tables.scan_prefix(key_prefix(&[database]))
            }
            None => tables.scan_prefix(b""),
        };
        entries
            .map(|entry| {
                let (key, value) = entry.map_err(|err| sled_error(self.dir(), err))?;
                decode(&value, || {
                    format!(
                        "catalog table {}",
                        String::from_utf8_lossy(&key).replace('\0', ".")
                    )
                })
            })
            .collect()
    }

    fn save_table(&self, table: &CatalogTable) -> Result<(), StateError> {
        check_name(DATABASE_NAME, &table.database)?;
        check_name(TABLE_NAME, &table.name)?;
        let databases = self.catalog_tree("catalog_databases")?;
        let tables = self.catalog_tree("catalog_tables")?;
        let history = self.catalog_tree("catalog_history")?;
        let key = table_key(&table.database, &table.name);
        let mut history_key = key.clone();
        history_key.extend_from_slice(&table.schema_version.to_be_bytes());
        let encoded_table = encode(table)?;
        let encoded_version = encode(&table.schema_snapshot())?;
        let encoded_database = encode(&CatalogDatabase {
            name: table.database.clone(),
            created_at: table.updated_at,
        })?;
        (&databases, &tables, &history)
            .transaction(|(databases, tables, history)| {
                if databases.get(table.database.as_bytes())?.is_none() {
                    databases.insert(table.database.as_bytes(), encoded_database.as_slice())?;
                }
                tables.insert(key.as_slice(), encoded_table.as_slice())?;
                if history.get(history_key.as_slice())?.is_none() {
                    history.insert(history_key.as_slice(), encoded_version.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            })
            .map_err(|err| match err {
                TransactionError::Abort(err) => err,
                TransactionError::Storage(err) => sled_error(self.dir(), err),
            })?;
        self.db()
            .flush()
            .map(drop)
            .map_err(|err| sled_error(self.dir(), err))
    }

    fn table_history(&self, database: &str, name: &str) -> Result<Vec<SchemaVersion>, StateError> {
        check_name(DATABASE_NAME, database)?;
        check_name(TABLE_NAME, name)?;
        self.catalog_tree("catalog_history")?
            .scan_prefix(table_key(database, name))
            .map(|entry| {
                let (_, value) = entry.map_err(|err| sled_error(self.dir(), err))?;
                decode(&value, || format!("schema history of {database}.{name}"))
            })
            .collect()
    }

    fn delete_table(&self, database: &str, name: &str) -> Result<bool, StateError> {
        check_name(DATABASE_NAME, database)?;
        check_name(TABLE_NAME, name)?;
        let existed = self
            .catalog_tree("catalog_tables")?
            .remove(table_key(database, name))
            .map_err(|err| sled_error(self.dir(), err))?
            .is_some();
        self.db()
            .flush()
            .map(drop)
            .map_err(|err| sled_error(self.dir(), err))?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_catalog_conformance() {
        let store = SledStore::temporary().expect("temporary store");
        crate::catalog_conformance::run_all(&store);
    }

    #[test]
    fn catalog_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path()).expect("open");
            store
                .save_table(&crate::catalog_conformance::sample_table("db", "t", 1))
                .expect("save");
        }
        let store = crate::sled_store::open_when_unlocked(dir.path());
        assert_eq!(
            store.table("db", "t").expect("table"),
            Some(crate::catalog_conformance::sample_table("db", "t", 1))
        );
    }
}
