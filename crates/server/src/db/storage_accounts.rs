//! Storage accounts and their containers, where import jobs put a seed's files;
//! and the datacenters that receive the drives.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{Container, Datacenter, StorageAccount};

use super::{conflict, seconds, time_of, Db, DbError, DbResult};

fn storage_account_row(row: &AnyRow) -> Result<StorageAccount, sqlx::Error> {
    Ok(StorageAccount {
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        name: row.try_get("name")?,
        created: time_of(row.try_get("created")?),
    })
}

pub(crate) fn datacenter_row(row: &AnyRow) -> Result<Datacenter, sqlx::Error> {
    Ok(Datacenter {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        address: row.try_get("address")?,
        import_public_key: row.try_get::<Option<String>, _>("import_public_key")?.unwrap_or_default(),
    })
}

impl Db {
    pub async fn insert_storage_account(&self, a: &StorageAccount) -> DbResult<()> {
        sqlx::query("INSERT INTO storage_accounts (id, subscription_id, name, created) VALUES ($1, $2, $3, $4)")
            .bind(&a.id)
            .bind(&a.subscription_id)
            .bind(&a.name)
            .bind(seconds(a.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a storage account named '{}' (names are unique across the service)", a.name)))?;
        Ok(())
    }

    pub async fn storage_account(&self, id: &str) -> DbResult<Option<StorageAccount>> {
        let row =
            sqlx::query("SELECT * FROM storage_accounts WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(storage_account_row).transpose()?)
    }

    pub async fn storage_accounts_of(&self, subscription_id: &str) -> DbResult<Vec<StorageAccount>> {
        let rows = sqlx::query("SELECT * FROM storage_accounts WHERE subscription_id = $1 ORDER BY name")
            .bind(subscription_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(storage_account_row).collect::<Result<_, _>>()?)
    }

    pub async fn insert_container(&self, c: &Container) -> DbResult<()> {
        sqlx::query("INSERT INTO containers (id, storage_account_id, name, created) VALUES ($1, $2, $3, $4)")
            .bind(&c.id)
            .bind(&c.storage_account_id)
            .bind(&c.name)
            .bind(seconds(c.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a container named '{}' in this storage account", c.name)))?;
        Ok(())
    }

    pub async fn containers_of(&self, storage_account_id: &str) -> DbResult<Vec<Container>> {
        let rows = sqlx::query("SELECT * FROM containers WHERE storage_account_id = $1 ORDER BY name")
            .bind(storage_account_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Container {
                    id: row.try_get("id")?,
                    storage_account_id: row.try_get("storage_account_id")?,
                    name: row.try_get("name")?,
                    created: time_of(row.try_get("created")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    pub async fn insert_datacenter(&self, d: &Datacenter) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO datacenters (id, name, address, created, import_public_key) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.address)
        .bind(self.now())
        .bind(&d.import_public_key)
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("a datacenter named '{}'", d.name)))?;
        Ok(())
    }

    pub async fn datacenter(&self, id: &str) -> DbResult<Option<Datacenter>> {
        let row = sqlx::query("SELECT * FROM datacenters WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(datacenter_row).transpose().map_err(DbError::from)
    }

    pub async fn datacenters(&self) -> DbResult<Vec<Datacenter>> {
        let rows = sqlx::query("SELECT * FROM datacenters ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(datacenter_row).collect::<Result<_, sqlx::Error>>().map_err(DbError::from)
    }
}
