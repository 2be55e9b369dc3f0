use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub device_identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    pub owner_user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub policy_id: Option<Uuid>,
    pub is_managed: bool,
    pub enrollment_status: String,
    pub group_id: Option<String>,
    pub status: String,
    pub last_seen_at: Option<DateTimeUtc>,
    pub settings_version: i64,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub applied_settings_version: Option<i64>,
    pub applied_at: Option<DateTimeUtc>,
    pub apply_failures: Option<Json>,
    pub fleet_group_id: Option<Uuid>,
    pub assigned_user_id: Option<Uuid>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub enrolled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
