use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub rule: String,
    pub severity: String,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub organization_id: Option<Uuid>,
    pub event_id: Uuid,
    pub data: Json,
    pub mailed: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
