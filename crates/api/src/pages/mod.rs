//! Minimal built-in pages for the links in account mail (`/verify-email`, `/reset-password`,
//! `/accept-invitation`), served when no `STEWARD_APP_URL` points the links at the product's
//! own front end, and for the unsubscribe link of scheduled reports (`/report-unsubscribe`,
//! always Steward's own). Plain HTML forms with a small script that calls the API; the token is read
//! in the browser (never written into the page by the server) and dropped from the address bar.
//! A strict Content-Security-Policy allows only this origin's script, style and API.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("pages.js");
const STYLE: &str = include_str!("pages.css");

const PASSWORD_FIELDS: &str = r#"<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">New password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>"#;

/// Only this origin's script, style and API; no framing, no form posts, no referrer (the token
/// is in the URL the page was opened with).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

struct Page {
    path: &'static str,
    title: &'static str,
    intro: &'static str,
    fields: &'static str,
    button: &'static str,
}

const PAGES: [Page; 4] = [
    Page {
        path: "verify-email",
        title: "Confirm your email address",
        intro: "Confirm this email address for your account.",
        fields: "",
        button: "Confirm email address",
    },
    Page {
        path: "reset-password",
        title: "Choose a new password",
        intro: "Choose a new password for your account. Every session is signed out when it is set.",
        fields: PASSWORD_FIELDS,
        button: "Set the new password",
    },
    Page {
        path: "accept-invitation",
        title: "Choose your password",
        intro: "An administrator created an account for you. Choose its password to start.",
        fields: PASSWORD_FIELDS,
        button: "Set the password",
    },
    Page {
        path: "report-unsubscribe",
        title: "Unsubscribe from this report",
        intro: "Stop receiving this scheduled report by mail. The operators who set it up see that you left.",
        fields: "",
        button: "Unsubscribe",
    },
];

fn render(page: &Page) -> String {
    PAGE.replace("{title}", page.title)
        .replace("{page}", page.path)
        .replace("{intro}", page.intro)
        .replace("{fields}", page.fields)
        .replace("{button}", page.button)
}

fn respond(content_type: &'static str, body: String, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(body)
}

/// Adds the pages and their script and style: the account mail's pages when Steward serves
/// them (`account_pages`: no `STEWARD_APP_URL`), the report unsubscribe page always (the
/// product's front end knows nothing of it).
pub fn configure(config: &mut web::ServiceConfig, account_pages: bool) {
    for page in PAGES
        .iter()
        .filter(|page| account_pages || page.path == "report-unsubscribe")
    {
        let html = render(page);
        config.route(
            &format!("/{}", page.path),
            web::get().to(move || {
                let html = html.clone();
                async move { respond("text/html; charset=utf-8", html, "no-store") }
            }),
        );
    }
    config
        .route(
            "/_steward/pages.js",
            web::get().to(|| async {
                respond(
                    "text/javascript; charset=utf-8",
                    SCRIPT.to_owned(),
                    "public, max-age=300",
                )
            }),
        )
        .route(
            "/_steward/pages.css",
            web::get()
                .to(|| async { respond("text/css; charset=utf-8", STYLE.to_owned(), "public, max-age=300") }),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for page in &PAGES {
            let html = render(page);
            assert!(
                !html.contains('{') && !html.contains('}'),
                "{}: {html}",
                page.path
            );
            assert!(html.contains(&format!("data-page=\"{}\"", page.path)));
        }
    }
}
