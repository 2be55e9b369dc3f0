//! The mail Steward sends, rendered from templates: each kind has a subject, a plain-text body
//! and an HTML body (sent as `multipart/alternative`). Built-in English templates ship in the
//! binary; an operator's directory (`STEWARD_MAIL_TEMPLATES_DIR`) replaces any of them and adds
//! translations in per-locale subdirectories (`de/`, `pt-BR/`). Every template is compiled and
//! rendered against sample values when loaded, so a typo fails start-up rather than a mail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Value, json};
use steward_domain::accounts::{EmailTokenPurpose, OutgoingMail};
use steward_domain::identity::check_locale;

/// What the product calls itself in mail (the footer of the HTML layout).
const PRODUCT: &str = "Steward";

/// Where the links in mail lead: one template per link with a `{token}` placeholder, by
/// default `{base}/verify-email?token={token}` and so on, `base` being `STEWARD_APP_URL` (the
/// product's own front end) or else Steward's public URL (its built-in pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailLinks {
    pub verify_email: String,
    pub reset_password: String,
    pub accept_invitation: String,
}

impl MailLinks {
    /// The paths Steward's built-in pages are served at.
    pub const PATHS: [&'static str; 3] = ["verify-email", "reset-password", "accept-invitation"];

    /// Links into Steward's built-in pages at `base` (its public URL): the token travels in the
    /// fragment (`#token=…`), which browsers never send to a server, so it stays out of
    /// access logs and `Referer` headers.
    pub fn built_in_pages(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            verify_email: format!("{base}/verify-email#token={{token}}"),
            reset_password: format!("{base}/reset-password#token={{token}}"),
            accept_invitation: format!("{base}/accept-invitation#token={{token}}"),
        }
    }

    /// Links into the product's own front end at `base` (`STEWARD_APP_URL`), the token in the
    /// query (`?token=…`).
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            verify_email: format!("{base}/verify-email?token={{token}}"),
            reset_password: format!("{base}/reset-password?token={{token}}"),
            accept_invitation: format!("{base}/accept-invitation?token={{token}}"),
        }
    }

    /// The link carrying `token` for `purpose`.
    pub fn link(&self, purpose: EmailTokenPurpose, token: &str) -> String {
        let template = match purpose {
            EmailTokenPurpose::VerifyEmail => &self.verify_email,
            EmailTokenPurpose::ResetPassword => &self.reset_password,
            EmailTokenPurpose::Invitation => &self.accept_invitation,
        };
        template.replace("{token}", token)
    }
}

impl Default for MailLinks {
    fn default() -> Self {
        Self::built_in_pages("http://127.0.0.1:8080")
    }
}

/// The kinds of mail Steward sends, named as their template files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MailKind {
    VerifyEmail,
    ResetPassword,
    Invitation,
    MfaChanged,
    Notification,
    NotificationDigest,
    /// A scheduled report (or its test).
    Report,
}

impl MailKind {
    pub const ALL: [MailKind; 7] = [
        MailKind::VerifyEmail,
        MailKind::ResetPassword,
        MailKind::Invitation,
        MailKind::MfaChanged,
        MailKind::Notification,
        MailKind::NotificationDigest,
        MailKind::Report,
    ];

    /// The stem of its template files (`verify-email.subject.txt`, `.txt`, `.html`).
    pub fn name(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify-email",
            MailKind::ResetPassword => "reset-password",
            MailKind::Invitation => "invitation",
            MailKind::MfaChanged => "mfa-changed",
            MailKind::Notification => "notification",
            MailKind::NotificationDigest => "notification-digest",
            MailKind::Report => "report",
        }
    }

    /// Values of the shapes the real mail uses, to check templates when they load: each
    /// branch a template may take on them (1 hour or several, every severity, a long digest).
    fn samples(self) -> Vec<Value> {
        let notification = |severity: &str| {
            json!({
                "title": "Sample", "message": "Sample message", "severity": severity,
                "rule": "failed_sign_ins", "at": "2026-01-01T00:00:00+00:00",
                "notifications_url": "https://steward.example.com/api/admin/v1/notifications",
            })
        };
        match self {
            MailKind::VerifyEmail | MailKind::ResetPassword | MailKind::Invitation => [1, 24, 72]
                .into_iter()
                .map(|hours| json!({"link": "https://app.example.com/verify-email?token=sample", "hours": hours}))
                .collect(),
            MailKind::MfaChanged => ["added", "removed", "reset_by_administrator", "reset_by_operator"]
                .into_iter()
                .map(|event| json!({"change": "A second factor was added to your account.", "event": event}))
                .collect(),
            MailKind::Notification => ["low", "medium", "high", "critical"]
                .into_iter()
                .map(notification)
                .collect(),
            MailKind::NotificationDigest => ["low", "critical"]
                .into_iter()
                .map(|worst| {
                    let listed: Vec<Value> = (0..12)
                        .map(|_| json!({"title": "Sample", "severity": worst, "at": "2026-01-01T00:00:00+00:00"}))
                        .collect();
                    json!({
                        "notifications": listed,
                        "worst": worst,
                        "notifications_url": "https://steward.example.com/api/admin/v1/notifications",
                    })
                })
                .collect(),
            MailKind::Report => [(false, None), (true, Some("report.csv"))]
                .into_iter()
                .map(|(test, attachment)| {
                    let rows: Vec<Value> = (0..12)
                        .map(|i| json!({"label": format!("Figure {i}"), "value": i}))
                        .collect();
                    json!({
                        "title": "Security summary", "name": "Daily security", "test": test,
                        "scope": "the whole system",
                        "from": "2026-01-01T09:00:00+00:00", "to": "2026-01-02T09:00:00+00:00",
                        "from_date": "2026-01-01", "to_date": "2026-01-02",
                        "sections": [{"title": "In the period", "rows": rows}, {"title": "Empty", "rows": []}],
                        "attachment": attachment,
                        "unsubscribe_url": "https://steward.example.com/report-unsubscribe?token=sample",
                    })
                })
                .collect(),
        }
    }

    #[cfg(test)]
    fn sample(self) -> Value {
        self.samples().into_iter().next().unwrap_or_default()
    }
}

/// The three parts of one kind of mail.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// The templates that ship in the binary.
const BUILT_IN: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    (
        "verify-email.subject.txt",
        include_str!("templates/verify-email.subject.txt"),
    ),
    ("verify-email.txt", include_str!("templates/verify-email.txt")),
    ("verify-email.html", include_str!("templates/verify-email.html")),
    (
        "reset-password.subject.txt",
        include_str!("templates/reset-password.subject.txt"),
    ),
    ("reset-password.txt", include_str!("templates/reset-password.txt")),
    (
        "reset-password.html",
        include_str!("templates/reset-password.html"),
    ),
    (
        "invitation.subject.txt",
        include_str!("templates/invitation.subject.txt"),
    ),
    ("invitation.txt", include_str!("templates/invitation.txt")),
    ("invitation.html", include_str!("templates/invitation.html")),
    (
        "mfa-changed.subject.txt",
        include_str!("templates/mfa-changed.subject.txt"),
    ),
    ("mfa-changed.txt", include_str!("templates/mfa-changed.txt")),
    ("mfa-changed.html", include_str!("templates/mfa-changed.html")),
    (
        "notification.subject.txt",
        include_str!("templates/notification.subject.txt"),
    ),
    ("notification.txt", include_str!("templates/notification.txt")),
    ("notification.html", include_str!("templates/notification.html")),
    (
        "notification-digest.subject.txt",
        include_str!("templates/notification-digest.subject.txt"),
    ),
    (
        "notification-digest.txt",
        include_str!("templates/notification-digest.txt"),
    ),
    (
        "notification-digest.html",
        include_str!("templates/notification-digest.html"),
    ),
    ("report.subject.txt", include_str!("templates/report.subject.txt")),
    ("report.txt", include_str!("templates/report.txt")),
    ("report.html", include_str!("templates/report.html")),
];

#[derive(Debug, thiserror::Error)]
pub enum MailTemplateError {
    #[error("mail templates in {dir}: {message}")]
    Directory { dir: PathBuf, message: String },
    #[error("mail template {name}: {message}")]
    Template { name: String, message: String },
}

fn template_error(name: &str, error: &minijinja::Error) -> MailTemplateError {
    let mut message = error.to_string();
    if let Some(line) = error.line() {
        message = format!("{message} (line {line})");
    }
    MailTemplateError::Template {
        name: name.to_owned(),
        message,
    }
}

/// Compiled mail templates: the built-in ones with an operator's overrides and translations.
pub struct MailTemplates {
    env: Environment<'static>,
    /// Locales (lower case) and the kinds each translates (subject and text present).
    locales: BTreeMap<String, BTreeSet<MailKind>>,
    /// Every template name loaded, `de/verify-email.html` style.
    names: BTreeSet<String>,
    /// With an operator's directory: the built-in templates, used (and the failure logged)
    /// when one of the operator's fails on values the start-up check did not try.
    fallback: Option<Box<MailTemplates>>,
}

impl std::fmt::Debug for MailTemplates {
    // Locales only: the templates themselves are long.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates")
            .field("locales", &self.locales)
            .finish_non_exhaustive()
    }
}

impl Default for MailTemplates {
    fn default() -> Self {
        Self::built_in()
    }
}

impl MailTemplates {
    /// The templates that ship in the binary, English only.
    pub fn built_in() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        let mut names = BTreeSet::new();
        for (name, source) in BUILT_IN {
            // Built-in templates are compiled by this module's tests; one that fails here is
            // left out and reported when a mail needs it.
            if env.add_template(name, source).is_ok() {
                names.insert((*name).to_owned());
            }
        }
        Self {
            env,
            locales: BTreeMap::new(),
            names,
            fallback: None,
        }
    }

    /// The built-in templates, with the files of `dir` replacing them and adding translations:
    /// `verify-email.subject.txt`, `verify-email.txt`, `verify-email.html`, `layout.html` at
    /// the top, and per-locale subdirectories (`de/verify-email.txt`). Unknown files, a
    /// translation without its subject or text, a syntax error and a value the template uses
    /// that its mail does not have are errors naming the file.
    pub fn load(dir: &Path) -> Result<Self, MailTemplateError> {
        let mut templates = Self::built_in();
        let directory_error = |message: String| MailTemplateError::Directory {
            dir: dir.to_owned(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|error| directory_error(error.to_string()))?;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| directory_error(error.to_string()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                check_locale(&name).map_err(|_| {
                    directory_error(format!("`{name}/` is not a locale tag (such as `de` or `pt-BR`)"))
                })?;
                let locale = name.to_ascii_lowercase();
                let inner = std::fs::read_dir(&path).map_err(|error| directory_error(error.to_string()))?;
                for file in inner {
                    let file = file.map_err(|error| directory_error(error.to_string()))?;
                    let file_name = file.file_name().to_string_lossy().into_owned();
                    if file_name.starts_with('.') {
                        continue;
                    }
                    if kind_of(&file_name).is_none() {
                        return Err(directory_error(format!(
                            "`{name}/{file_name}` is not a mail template; a locale holds {}",
                            known_names(false)
                        )));
                    }
                    files.push((format!("{locale}/{file_name}"), file.path()));
                }
            } else {
                if name != "layout.html" && kind_of(&name).is_none() {
                    return Err(directory_error(format!(
                        "`{name}` is not a mail template; expected {}",
                        known_names(true)
                    )));
                }
                files.push((name, path));
            }
        }
        for (name, path) in files {
            let source = std::fs::read_to_string(&path)
                .map_err(|error| directory_error(format!("{}: {error}", path.display())))?;
            templates
                .env
                .add_template_owned(name.clone(), source)
                .map_err(|error| template_error(&name, &error))?;
            templates.names.insert(name);
        }
        templates.index_locales()?;
        templates.check()?;
        templates.fallback = Some(Box::new(Self::built_in()));
        Ok(templates)
    }

    fn index_locales(&mut self) -> Result<(), MailTemplateError> {
        let mut locales: BTreeMap<String, BTreeSet<MailKind>> = BTreeMap::new();
        for name in &self.names {
            let Some((locale, file)) = name.split_once('/') else {
                continue;
            };
            let Some(kind) = kind_of(file) else { continue };
            let stem = kind.name();
            for required in ["subject.txt", "txt"] {
                let needed = format!("{locale}/{stem}.{required}");
                if !self.names.contains(&needed) {
                    return Err(MailTemplateError::Template {
                        name: name.clone(),
                        message: format!("a translation needs its subject and text: {needed} is missing"),
                    });
                }
            }
            locales.entry(locale.to_owned()).or_default().insert(kind);
        }
        self.locales = locales;
        Ok(())
    }

    /// Renders every template against its kind's sample values.
    fn check(&self) -> Result<(), MailTemplateError> {
        for kind in MailKind::ALL {
            let mut prefixes = vec![String::new()];
            prefixes.extend(
                self.locales
                    .iter()
                    .filter(|(_, kinds)| kinds.contains(&kind))
                    .map(|(locale, _)| format!("{locale}/")),
            );
            for prefix in prefixes {
                for part in PARTS {
                    let name = format!("{prefix}{}.{part}", kind.name());
                    if !self.names.contains(&name) {
                        continue;
                    }
                    for sample in kind.samples() {
                        let context =
                            self.context(kind, prefix.trim_end_matches('/'), "someone@example.com", sample);
                        self.render_one(&name, &context)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The locales with translations (lower case), for start-up logs.
    pub fn locales(&self) -> Vec<String> {
        self.locales.keys().cloned().collect()
    }

    /// The locale directory to use for `kind` and a user's `locale` (`de-AT` falls back to
    /// `de`), or `None` for the top-level (English) templates.
    fn locale_for(&self, kind: MailKind, locale: Option<&str>) -> Option<String> {
        let tag = locale?.to_ascii_lowercase();
        let mut candidates = vec![tag.clone()];
        let mut rest = tag.as_str();
        while let Some((shorter, _)) = rest.rsplit_once('-') {
            candidates.push(shorter.to_owned());
            rest = shorter;
        }
        candidates.into_iter().find(|candidate| {
            self.locales
                .get(candidate)
                .is_some_and(|kinds| kinds.contains(&kind))
        })
    }

    fn context(&self, kind: MailKind, lang: &str, recipient: &str, values: Value) -> Value {
        let mut context = match values {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        context.insert("product".to_owned(), json!(PRODUCT));
        context.insert(
            "lang".to_owned(),
            json!(if lang.is_empty() { "en" } else { lang }),
        );
        context.insert("email".to_owned(), json!(recipient));
        context.insert("kind".to_owned(), json!(kind.name()));
        Value::Object(context)
    }

    fn render_one(&self, name: &str, context: &Value) -> Result<String, MailTemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|error| template_error(name, &error))?;
        template
            .render(context)
            .map_err(|error| template_error(name, &error))
    }

    /// The mail of `kind` to `recipient`, in the recipient's `locale` where a translation
    /// exists: subject (on one line), text, and HTML unless a translation has none.
    /// An operator's template that fails is logged and the built-in one used instead, so a
    /// mistake the start-up check could not see does not stop mail.
    pub fn render(
        &self,
        kind: MailKind,
        recipient: &str,
        locale: Option<&str>,
        values: impl Serialize,
    ) -> Result<OutgoingMail, MailTemplateError> {
        let values = serde_json::to_value(values).map_err(|error| MailTemplateError::Template {
            name: kind.name().to_owned(),
            message: error.to_string(),
        })?;
        match (
            self.render_value(kind, recipient, locale, values.clone()),
            &self.fallback,
        ) {
            (Err(error), Some(built_in)) => {
                tracing::error!(%error, "a mail template failed: the built-in template is used instead");
                built_in.render_value(kind, recipient, None, values)
            }
            (result, _) => result,
        }
    }

    fn render_value(
        &self,
        kind: MailKind,
        recipient: &str,
        locale: Option<&str>,
        values: Value,
    ) -> Result<OutgoingMail, MailTemplateError> {
        let chosen = self.locale_for(kind, locale);
        let prefix = chosen
            .as_ref()
            .map(|locale| format!("{locale}/"))
            .unwrap_or_default();
        let context = self.context(kind, chosen.as_deref().unwrap_or(""), recipient, values);
        let stem = format!("{prefix}{}", kind.name());
        let subject = self.render_one(&format!("{stem}.subject.txt"), &context)?;
        let body = self.render_one(&format!("{stem}.txt"), &context)?;
        let html_name = format!("{stem}.html");
        let html = if self.names.contains(&html_name) {
            Some(self.render_one(&html_name, &context)?)
        } else {
            None
        };
        Ok(OutgoingMail {
            recipient: recipient.to_owned(),
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            body: format!("{}\n", body.trim_end()),
            html,
            language: chosen,
            attachment: None,
            unsubscribe: None,
        })
    }
}

/// minijinja's formatter, but HTML escaping leaves `/` alone: a link in an attribute or in the
/// text reads `https://…`, not `https:&#x2f;&#x2f;…` (which mail clients show as typed).
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#x27;"),
                    other => escaped.push(other),
                }
            }
            out.write_str(&escaped)
                .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed"))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// The kind a template file belongs to (`verify-email.html` → `VerifyEmail`).
fn kind_of(file: &str) -> Option<MailKind> {
    MailKind::ALL
        .into_iter()
        .find(|kind| PARTS.iter().any(|part| file == format!("{}.{part}", kind.name())))
}

fn known_names(with_layout: bool) -> String {
    let mut names: Vec<String> = MailKind::ALL
        .iter()
        .map(|kind| format!("{}.{{subject.txt,txt,html}}", kind.name()))
        .collect();
    if with_layout {
        names.push("layout.html".to_owned());
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn every_built_in_template_compiles_and_renders() {
        let templates = MailTemplates::built_in();
        assert_eq!(templates.names.len(), BUILT_IN.len());
        templates.check().unwrap();
        for kind in MailKind::ALL {
            let mail = templates
                .render(kind, "a@example.com", None, kind.sample())
                .unwrap();
            assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'));
            assert!(
                mail.html
                    .as_deref()
                    .is_some_and(|html| html.contains("<html lang=\"en\">"))
            );
            assert!(mail.language.is_none());
        }
    }

    #[test]
    fn html_escapes_values_and_text_does_not() {
        let templates = MailTemplates::built_in();
        let mail = templates
            .render(
                MailKind::MfaChanged,
                "a@example.com",
                None,
                json!({"change": "<b>R&D</b>"}),
            )
            .unwrap();
        assert!(mail.body.contains("<b>R&D</b>"));
        let html = mail.html.unwrap();
        assert!(html.contains("&lt;b&gt;R&amp;D&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn translations_are_chosen_by_locale_with_fallback_to_the_language() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "de/reset-password.subject.txt",
            "Passwort zurücksetzen",
        );
        write(
            dir.path(),
            "de/reset-password.txt",
            "Neues Passwort: {{ link }} ({{ hours }} h)",
        );
        let templates = MailTemplates::load(dir.path()).unwrap();
        let values = json!({"link": "https://x/reset-password?token=t", "hours": 1});
        let german = templates
            .render(MailKind::ResetPassword, "a@example.com", Some("de-AT"), &values)
            .unwrap();
        assert_eq!(german.subject, "Passwort zurücksetzen");
        assert_eq!(
            german.body,
            "Neues Passwort: https://x/reset-password?token=t (1 h)\n"
        );
        assert_eq!(german.html, None, "no German HTML: text only, not English HTML");
        assert_eq!(german.language.as_deref(), Some("de"));
        let french = templates
            .render(MailKind::ResetPassword, "a@example.com", Some("fr"), &values)
            .unwrap();
        assert_eq!(french.subject, "Reset your password");
        assert!(french.html.is_some());
        // Another kind has no German translation: English.
        let verify = templates
            .render(MailKind::VerifyEmail, "a@example.com", Some("de"), &values)
            .unwrap();
        assert_eq!(verify.subject, "Confirm your email address");
    }

    #[test]
    fn overrides_replace_built_in_templates_and_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "layout.html",
            "<html lang=\"{{ lang }}\">ACME {% block content %}{% endblock %}</html>",
        );
        write(
            dir.path(),
            "verify-email.subject.txt",
            "Welcome to ACME, {{ email }}",
        );
        let templates = MailTemplates::load(dir.path()).unwrap();
        let mail = templates
            .render(
                MailKind::VerifyEmail,
                "a@example.com",
                None,
                MailKind::VerifyEmail.sample(),
            )
            .unwrap();
        assert_eq!(mail.subject, "Welcome to ACME, a@example.com");
        assert!(mail.html.unwrap().starts_with("<html lang=\"en\">ACME "));
        assert!(mail.body.starts_with("Confirm this email address"));
    }

    #[test]
    fn an_operator_template_failing_at_send_time_falls_back_to_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        // Passes the start-up check (no sample has 2 hours), fails on a real mail's values.
        write(
            dir.path(),
            "reset-password.txt",
            "{% if hours == 2 %}{{ missing }}{% endif %}{{ link }}",
        );
        let templates = MailTemplates::load(dir.path()).unwrap();
        let mail = templates
            .render(
                MailKind::ResetPassword,
                "a@example.com",
                None,
                json!({"link": "https://x/r", "hours": 2}),
            )
            .unwrap();
        assert!(mail.body.starts_with("Someone (hopefully you)"), "{}", mail.body);
        let fine = templates
            .render(
                MailKind::ResetPassword,
                "a@example.com",
                None,
                json!({"link": "https://x/r", "hours": 1}),
            )
            .unwrap();
        assert_eq!(fine.body, "https://x/r\n");
    }

    #[test]
    fn every_documented_value_may_be_used() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "mfa-changed.txt",
            "{{ change }} {{ event }} {{ email }} {{ lang }} {{ product }} {{ kind }}",
        );
        write(
            dir.path(),
            "notification-digest.txt",
            "{% for n in notifications %}{{ n.title }} {{ n.severity }} {{ n.at }}{% endfor %} {{ worst }} {{ notifications_url }}",
        );
        MailTemplates::load(dir.path()).unwrap();
    }

    #[test]
    fn mistakes_in_the_directory_are_named() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "verify-emial.txt",
                "x",
                "`verify-emial.txt` is not a mail template",
            ),
            ("en_GB/verify-email.txt", "x", "`en_GB/` is not a locale tag"),
            ("de/layout.html", "x", "`de/layout.html` is not a mail template"),
            (
                "de/verify-email.txt",
                "x",
                "de/verify-email.subject.txt is missing",
            ),
            ("verify-email.txt", "{{ link ", "mail template verify-email.txt"),
            (
                "verify-email.txt",
                "{{ linkk }}",
                "mail template verify-email.txt",
            ),
        ];
        for (name, text, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), name, text);
            let error = MailTemplates::load(dir.path()).unwrap_err().to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
        let missing = MailTemplates::load(Path::new("/nonexistent/steward-mail")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/steward-mail"));
    }
}
