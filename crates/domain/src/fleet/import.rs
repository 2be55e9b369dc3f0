//! Bulk device import: rows parsed and checked one by one, every problem reported with its
//! line, then stored all or nothing.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::FleetRuleError;
use super::enrollment::Hardware;
use crate::devices::DeviceRegistration;

/// What to do with an import row whose device (or user) already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Skip,
    Update,
}

/// One device of a bulk import, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceImport {
    /// The 1-based line (CSV, counting the header) or item (JSON) it came from.
    pub line: usize,
    pub identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub hardware: Hardware,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub assigned_user_email: Option<String>,
}

/// One problem of an import, by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl ImportProblem {
    pub fn new(line: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

fn uuid_field(
    line: usize,
    row: &BTreeMap<String, String>,
    field: &str,
    problems: &mut Vec<ImportProblem>,
) -> Option<Uuid> {
    let value = row.get(field).map(|v| v.trim()).filter(|v| !v.is_empty())?;
    match Uuid::parse_str(value) {
        Ok(id) => Some(id),
        Err(_) => {
            problems.push(ImportProblem::new(line, field, "must be a UUID"));
            None
        }
    }
}

/// Validates one import row (field → text). Every problem of the row is reported.
pub fn parse_device_row(
    line: usize,
    row: &BTreeMap<String, String>,
) -> Result<DeviceImport, Vec<ImportProblem>> {
    let field = |name: &str| row.get(name).map(String::as_str);
    let mut problems = Vec::new();
    let known = [
        "deviceId",
        "displayName",
        "platform",
        "serialNumber",
        "manufacturer",
        "model",
        "policyId",
        "groupId",
        "assignedUserEmail",
    ];
    for name in row.keys().filter(|name| !known.contains(&name.as_str())) {
        problems.push(ImportProblem::new(line, name.clone(), "unknown column"));
    }
    let registration = DeviceRegistration::parse(
        field("deviceId").unwrap_or(""),
        field("displayName").or(field("deviceId")).unwrap_or(""),
        field("platform"),
        None,
        None,
        None,
        None,
    );
    let registration = match registration {
        Ok(registration) => Some(registration),
        Err(FleetRuleError::Invalid { field, message }) => {
            problems.push(ImportProblem::new(line, field, message));
            None
        }
        Err(other) => {
            problems.push(ImportProblem::new(line, "deviceId", other.to_string()));
            None
        }
    };
    let extras = Hardware::parse(field("serialNumber"), field("manufacturer"), field("model"));
    let extras = match extras {
        Ok(extras) => Some(extras),
        Err(FleetRuleError::Invalid { field, message }) => {
            problems.push(ImportProblem::new(line, field, message));
            None
        }
        Err(other) => {
            problems.push(ImportProblem::new(line, "serialNumber", other.to_string()));
            None
        }
    };
    let policy_id = uuid_field(line, row, "policyId", &mut problems);
    let group_id = uuid_field(line, row, "groupId", &mut problems);
    let assigned_user_email = field("assignedUserEmail")
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .map(str::to_lowercase);
    if assigned_user_email
        .as_deref()
        .is_some_and(|email| !email.contains('@') || email.len() > 254)
    {
        problems.push(ImportProblem::new(
            line,
            "assignedUserEmail",
            "must be an email address",
        ));
    }
    match (registration, extras) {
        (Some(registration), Some(extras)) if problems.is_empty() => Ok(DeviceImport {
            line,
            identifier: registration.identifier,
            display_name: registration.display_name,
            platform: registration.platform,
            hardware: extras,
            policy_id,
            group_id,
            assigned_user_email,
        }),
        _ => Err(problems),
    }
}

/// Problems across rows: the same device twice in one import.
pub fn duplicate_rows(rows: &[DeviceImport]) -> Vec<ImportProblem> {
    repeated(
        rows.iter().map(|row| (row.line, row.identifier.as_str())),
        "deviceId",
        "device",
    )
}

/// A problem for each `(line, key)` whose key an earlier line already had.
pub(crate) fn repeated<'a>(
    rows: impl Iterator<Item = (usize, &'a str)>,
    field: &str,
    what: &str,
) -> Vec<ImportProblem> {
    let mut first_line: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (line, key) in rows {
        match first_line.get(key) {
            Some(first) => problems.push(ImportProblem::new(
                line,
                field,
                format!("repeats the {what} of line {first}"),
            )),
            None => {
                first_line.insert(key, line);
            }
        }
    }
    problems
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
}

/// A device row ready to store: references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDeviceImport {
    pub row: DeviceImport,
    pub assigned_user_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_rows_report_every_problem_with_its_line() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let good = parse_device_row(2, &row(&[("deviceId", "dev-1"), ("platform", "Android")]));
        let good = good.map_err(|p| p.len());
        assert_eq!(good.as_ref().map(|d| d.display_name.as_str()), Ok("dev-1"));
        assert_eq!(
            good.as_ref().map(|d| d.platform.clone()),
            Ok(Some("android".to_owned()))
        );
        let problems = parse_device_row(
            3,
            &row(&[
                ("deviceId", ""),
                ("policyId", "nope"),
                ("colour", "red"),
                ("assignedUserEmail", "x"),
            ]),
        )
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["colour", "deviceId", "policyId", "assignedUserEmail"]);
        assert!(problems.iter().all(|p| p.line == 3));
        let rows: Vec<DeviceImport> = ["a", "b", "a"]
            .iter()
            .enumerate()
            .filter_map(|(i, id)| parse_device_row(i + 2, &row(&[("deviceId", id)])).ok())
            .collect();
        let duplicates = duplicate_rows(&rows);
        assert_eq!(duplicates.len(), 1);
        assert_eq!(duplicates[0].line, 4);
    }
}
