use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub owner_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub parameters: Json,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub progress_message: Option<String>,
    pub result: Option<Json>,
    pub error: Option<Json>,
    pub file_name: Option<String>,
    pub file_content_type: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
