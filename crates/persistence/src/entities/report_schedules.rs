use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub report_type: String,
    pub frequency: String,
    pub time_of_day: String,
    pub weekday: Option<String>,
    pub day_of_month: Option<i32>,
    pub time_zone: String,
    pub format: String,
    pub organization_id: Option<Uuid>,
    pub enabled: bool,
    pub owner_id: Option<Uuid>,
    pub next_run_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
