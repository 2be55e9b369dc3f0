//! An operator's activity over a window: their audit entries grouped by sign-in session,
//! counted by action per day, and flagged where a pattern deserves a look (see
//! `steward_domain::admin_activity`). Readable with `audit:read`; the export needs
//! `audit:export`.

use chrono::{DateTime, Duration, Utc};
use steward_domain::admin_activity::{
    Activity, BASELINE_DAYS, DEFAULT_WINDOW_DAYS, MAX_ENTRIES, MAX_WINDOW_DAYS, summarise,
};
use steward_domain::rbac::Permission;
use uuid::Uuid;

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// The question as asked (checked after the caller's access).
#[derive(Debug, Clone, Default)]
pub struct ActivityRequest {
    /// Required: the operator whose activity to show.
    pub admin: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The answer: the checked window and what happened in it.
#[derive(Debug, Clone)]
pub struct AdminActivity {
    pub admin: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub activity: Activity,
}

pub struct AdminActivityService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> AdminActivityService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// `principal` (roles loaded) must hold `permission` (`audit:read` to read, `audit:export`
    /// to export).
    pub async fn activity(
        &self,
        principal: &Principal,
        permission: Permission,
        request: ActivityRequest,
    ) -> Result<AdminActivity, AppError> {
        if !principal.allows(permission) {
            return Err(AppError::forbidden(format!(
                "an operator's activity needs the permission {}",
                permission.as_str()
            )));
        }
        let now = Utc::now();
        let admin = request
            .admin
            .ok_or_else(|| AppError::invalid("adminId", "required: the operator whose activity to show"))?;
        let to = request.to.unwrap_or(now);
        let from = request.from.unwrap_or(to - Duration::days(DEFAULT_WINDOW_DAYS));
        let earliest = DateTime::from_timestamp(0, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        if from < earliest {
            return Err(AppError::invalid("from", "must not be before 1970"));
        }
        if to > now + Duration::days(1) {
            return Err(AppError::invalid("to", "must not be more than a day ahead"));
        }
        if from >= to {
            return Err(AppError::invalid("from", "must be before to"));
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(AppError::invalid(
                "from",
                format!("the window may span at most {MAX_WINDOW_DAYS} days"),
            ));
        }
        let entries = self
            .steward
            .store
            .actor_entries(admin, from, to, MAX_ENTRIES + 1)
            .await?;
        if entries.len() as u64 > MAX_ENTRIES {
            return Err(AppError::invalid(
                "from",
                format!("more than {MAX_ENTRIES} entries in the window: ask for a shorter one"),
            ));
        }
        let baseline = self
            .steward
            .store
            .actor_baseline(admin, from - Duration::days(BASELINE_DAYS), from)
            .await?;
        Ok(AdminActivity {
            admin,
            from,
            to,
            activity: summarise(&entries, &baseline),
        })
    }
}

/// The activity as CSV, a row per session and action, per day and action, and per flag:
/// `section,sessionId,from,to,action,count,ipAddresses,userAgent,rule,subject,note`.
pub fn activity_csv(report: &AdminActivity) -> Result<Vec<u8>, csv::Error> {
    use crate::audit::csv_cell;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "section",
        "sessionId",
        "from",
        "to",
        "action",
        "count",
        "ipAddresses",
        "userAgent",
        "rule",
        "subject",
        "note",
    ])?;
    for session in &report.activity.sessions {
        for (action, count) in &session.actions {
            writer.write_record([
                "session".to_owned(),
                session.session_id.map(|id| id.to_string()).unwrap_or_default(),
                session.first.to_rfc3339(),
                session.last.to_rfc3339(),
                csv_cell(action.clone()),
                count.to_string(),
                csv_cell(session.ip_addresses.join(" ")),
                csv_cell(session.user_agent.clone().unwrap_or_default()),
                String::new(),
                String::new(),
                String::new(),
            ])?;
        }
    }
    for (day, actions) in &report.activity.days {
        for (action, count) in actions {
            writer.write_record([
                "day".to_owned(),
                String::new(),
                day.to_string(),
                String::new(),
                csv_cell(action.clone()),
                count.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ])?;
        }
    }
    for flag in &report.activity.flags {
        writer.write_record([
            "flag".to_owned(),
            flag.session_id.map(|id| id.to_string()).unwrap_or_default(),
            flag.from.to_rfc3339(),
            flag.to.to_rfc3339(),
            String::new(),
            flag.count.to_string(),
            String::new(),
            String::new(),
            flag.rule.as_str().to_owned(),
            csv_cell(flag.subject.clone().unwrap_or_default()),
            flag.rule.rule(),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}
