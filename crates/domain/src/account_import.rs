//! Operators' bulk import of accounts: rows of `email, displayName, roles, organizationSlug,
//! orgRole`, each checked on its own (the row's shape) before anything is looked up.

use std::collections::BTreeMap;

use crate::fleet::ImportProblem;
use crate::identity::{DisplayName, EmailAddress};
use crate::organizations::OrgRole;

/// The columns an account import knows.
pub const COLUMNS: [&str; 5] = ["email", "displayName", "roles", "organizationSlug", "orgRole"];

/// One account row, its shape checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountImport {
    pub line: usize,
    /// Lower-cased.
    pub email: String,
    /// The given name, or the address's local part.
    pub display_name: String,
    /// System roles, lower-cased, in the order given (`;`-separated in CSV).
    pub roles: Vec<String>,
    pub organization_slug: Option<String>,
    /// With an organization: the role there (`viewer` when not given).
    pub org_role: Option<OrgRole>,
}

/// Checks a row's shape: a valid address, a valid name, role names, an organization role only
/// with an organization, no unknown column.
pub fn parse_account_row(
    line: usize,
    row: &BTreeMap<String, String>,
) -> Result<AccountImport, Vec<ImportProblem>> {
    let mut problems = Vec::new();
    for name in row.keys().filter(|name| !COLUMNS.contains(&name.as_str())) {
        problems.push(ImportProblem::new(line, name.clone(), "unknown column"));
    }
    let email = match row.get("email").map(|email| EmailAddress::parse(email)) {
        Some(Ok(email)) => Some(email.as_str().to_owned()),
        _ => {
            problems.push(ImportProblem::new(line, "email", "must be an email address"));
            None
        }
    };
    let display_name = match row.get("displayName") {
        Some(name) => match DisplayName::parse(name) {
            Ok(name) => Some(name.into_inner()),
            Err(error) => {
                problems.push(ImportProblem::new(line, "displayName", error.to_string()));
                None
            }
        },
        None => email
            .as_deref()
            .and_then(|email| email.split('@').next())
            .and_then(|local| DisplayName::parse(local).ok())
            .map(DisplayName::into_inner),
    };
    let mut roles = Vec::new();
    if let Some(text) = row.get("roles") {
        for role in text.split([';', ',']).map(|role| role.trim().to_lowercase()) {
            if role.is_empty() {
                continue;
            }
            if role.chars().count() > 64
                || !role
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                problems.push(ImportProblem::new(line, "roles", "role names are a-z, 0-9 and _"));
            } else if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    let organization_slug = row.get("organizationSlug").map(|slug| slug.trim().to_lowercase());
    let org_role = match (row.get("orgRole"), &organization_slug) {
        (None, None) => None,
        (None, Some(_)) => Some(OrgRole::Viewer),
        (Some(_), None) => {
            problems.push(ImportProblem::new(line, "orgRole", "needs an organizationSlug"));
            None
        }
        (Some(text), Some(_)) => match OrgRole::parse(text.trim()) {
            Some(role) => Some(role),
            None => {
                problems.push(ImportProblem::new(
                    line,
                    "orgRole",
                    "must be owner, admin, viewer or member",
                ));
                None
            }
        },
    };
    match (email, display_name) {
        (Some(email), Some(display_name)) if problems.is_empty() => Ok(AccountImport {
            line,
            email,
            display_name,
            roles,
            organization_slug,
            org_role,
        }),
        (Some(_), None) if problems.is_empty() => Err(vec![ImportProblem::new(
            line,
            "displayName",
            "is needed when the address's local part is not a valid name",
        )]),
        _ => Err(problems),
    }
}

/// Problems across rows: the same address twice in one import.
pub fn duplicate_account_rows(rows: &[AccountImport]) -> Vec<ImportProblem> {
    crate::fleet::repeated(
        rows.iter().map(|row| (row.line, row.email.as_str())),
        "email",
        "account",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[(&str, &str)]) -> BTreeMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn rows_are_checked_for_shape() {
        let parsed = parse_account_row(
            2,
            &row(&[
                ("email", " Ann@Example.com "),
                ("roles", "Support; auditor;support"),
            ]),
        )
        .unwrap();
        assert_eq!(parsed.email, "ann@example.com");
        assert_eq!(parsed.display_name, "ann");
        assert_eq!(parsed.roles, ["support", "auditor"]);
        assert_eq!(parsed.org_role, None);
        let with_org = parse_account_row(
            3,
            &row(&[("email", "b@example.com"), ("organizationSlug", "acme")]),
        )
        .unwrap();
        assert_eq!(with_org.org_role, Some(OrgRole::Viewer));
        for bad in [
            row(&[("email", "nope")]),
            row(&[("email", "a@example.com"), ("orgRole", "admin")]),
            row(&[
                ("email", "a@example.com"),
                ("organizationSlug", "acme"),
                ("orgRole", "boss"),
            ]),
            row(&[("email", "a@example.com"), ("displayName", "a\u{0}b")]),
            row(&[("email", "a@example.com"), ("roles", "sup port")]),
            row(&[("email", "a@example.com"), ("colour", "red")]),
            row(&[]),
        ] {
            assert!(parse_account_row(4, &bad).is_err(), "{bad:?}");
        }
    }
}
