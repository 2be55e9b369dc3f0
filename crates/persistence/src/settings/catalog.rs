//! The setting catalog.

use super::*;
use steward_domain::settings::store::SettingCatalogStore;

impl SettingCatalogStore for Database {
    async fn setting_definitions(&self) -> Result<Vec<SettingDefinition>, RepositoryError> {
        setting_definitions::Entity::find()
            .order_by_asc(setting_definitions::Column::SortOrder)
            .order_by_asc(setting_definitions::Column::Key)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(definition)
            .collect()
    }
    async fn create_setting_definition(
        &self,
        definition: &SettingDefinition,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        setting_definitions::Entity::insert(definition_row(definition, Utc::now()))
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
    async fn update_setting_definition(
        &self,
        definition: &SettingDefinition,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let updated = update_definition_row(&transaction, definition, Utc::now()).await?;
        if updated == 0 {
            return Err(RepositoryError::NotFound);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
    async fn delete_setting_definition(&self, key: &str, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let deleted = setting_definitions::Entity::delete_many()
            .filter(setting_definitions::Column::Key.eq(key))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if deleted.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        device_settings::Entity::delete_many()
            .filter(device_settings::Column::SettingKey.eq(key))
            .exec(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
}

/// Writes `definition` over the stored one of its key (its version goes up); answers the rows
/// changed (0: no such key).
pub(crate) async fn update_definition_row<C: sea_orm::ConnectionTrait>(
    connection: &C,
    definition: &SettingDefinition,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let updated = setting_definitions::Entity::update_many()
        .col_expr(
            setting_definitions::Column::ValueType,
            Expr::value(definition.value_type.as_str()),
        )
        .col_expr(
            setting_definitions::Column::DefaultValue,
            Expr::value(definition.default_value.clone()),
        )
        .col_expr(
            setting_definitions::Column::Constraints,
            Expr::value(Some(json!(definition.constraints))),
        )
        .col_expr(
            setting_definitions::Column::Category,
            Expr::value(definition.category.clone()),
        )
        .col_expr(
            setting_definitions::Column::Description,
            Expr::value(definition.description.clone()),
        )
        .col_expr(
            setting_definitions::Column::IsLockable,
            Expr::value(definition.is_lockable),
        )
        .col_expr(
            setting_definitions::Column::MergeRule,
            Expr::value(definition.merge_rule.as_str()),
        )
        .col_expr(
            setting_definitions::Column::SortOrder,
            Expr::value(definition.sort_order),
        )
        .col_expr(
            setting_definitions::Column::Version,
            Expr::col(setting_definitions::Column::Version).add(1),
        )
        .col_expr(setting_definitions::Column::UpdatedAt, Expr::value(now))
        .filter(setting_definitions::Column::Key.eq(definition.key.as_str()))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(updated.rows_affected)
}
