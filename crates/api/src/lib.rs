//! Steward's HTTP shell (actix-web). Handlers stay thin: extract, authorize through the
//! domain, call a service, render. Everything leaves through the envelopes in [`envelope`] and
//! [`error`].

mod admin_guard;
pub mod auth;
pub mod devices;
pub mod envelope;
pub mod error;
pub mod extractors;
pub mod fleet;
pub mod groups;
mod health;
pub mod metrics;
mod middleware;
mod openapi;
pub mod org_access;
mod pages;
pub mod rate_limit;
mod request_examples;
pub mod request_id;
mod response_schemas;
mod routes;
pub mod settings;
pub mod state;
mod swagger;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpRequest, HttpResponse, web};
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};

pub use error::{ApiError, ErrorCode, ErrorEnvelope};
pub use extractors::TrustedProxies;
pub use state::{AppState, HttpSettings};

/// Where the spec is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

/// Every route, declared once: the router and the OpenAPI document both come from here.
fn routes(config: &mut ServiceConfig) {
    use routes::{
        admin, admin_activity, admin_bulk, admin_groups, admin_user_mfa, admin_user_roles, admin_user_search,
        admin_users, api_keys, audit, auth, auth_mail, auth_mfa, config_backup, dashboard, database,
        device_enrollment, device_events, devices, enrollment_tokens, federation, fleet_devices,
        fleet_groups, groups, imports, ip_allowlist, jobs, notifications, operator_health, org_quotas,
        organizations, personal_tokens, policies, policy_application, report_schedules, roles,
        setting_definitions, settings, unlock_requests, user_quotas, users, webhooks,
    };
    config
        .service(health::index)
        .service(health::liveness)
        .service(health::readiness)
        .service(health::metrics)
        .service(routes::jwks::jwks)
        .service(routes::jwks::discovery)
        .service(
            scope("/api/v1/auth")
                .service(auth::register)
                .service(auth::login)
                .service(auth_mfa::login_mfa)
                .service(auth_mfa::mfa_status)
                .service(auth_mfa::begin_totp)
                .service(auth_mfa::verify_totp)
                .service(auth_mfa::disable_totp)
                .service(auth_mfa::regenerate_recovery_codes)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::me)
                .service(auth::update_me)
                .service(auth::delete_me)
                .service(auth::change_password)
                .service(auth::export_me)
                .service(user_quotas::my_quotas)
                .service(personal_tokens::list_tokens)
                .service(personal_tokens::create_token)
                .service(personal_tokens::revoke_token)
                .service(auth::sessions)
                .service(auth::revoke_session)
                .service(auth_mail::forgot_password)
                .service(auth_mail::reset_password)
                .service(auth_mail::accept_invitation)
                .service(auth_mail::verify_email)
                .service(auth_mail::resend_verification)
                .service(federation::provider_sign_in)
                .service(federation::link_provider)
                .service(federation::unlink_provider),
        )
        .service(
            scope("/api/v1/groups")
                .service(groups::create_group)
                .service(groups::list_groups)
                .service(groups::join_group)
                .service(groups::get_group)
                .service(groups::update_group)
                .service(groups::delete_group)
                .service(groups::list_members)
                .service(groups::change_member_role)
                .service(groups::remove_member)
                .service(groups::transfer_group)
                .service(groups::create_invite)
                .service(groups::list_invites)
                .service(groups::revoke_invite)
                .service(unlock_requests::group_unlock_requests),
        )
        .service(
            scope("/api/v1/devices")
                .service(devices::register_device)
                .service(device_enrollment::enroll_device)
                .service(device_enrollment::refresh_device_token)
                .service(devices::get_device)
                // Fixed segments before `{key}`.
                .service(settings::get_settings)
                .service(settings::update_settings)
                .service(settings::get_locks)
                .service(settings::update_locks)
                .service(settings::sync_settings)
                .service(settings::settings_status)
                .service(settings::request_sync)
                .service(settings::get_setting)
                .service(settings::update_setting)
                .service(settings::lock_setting)
                .service(settings::unlock_setting)
                .service(unlock_requests::request_unlock)
                .service(unlock_requests::device_unlock_requests)
                .service(device_enrollment::acknowledge_command)
                .service(device_events::ingest_events)
                .service(device_events::device_event_counts)
                .service(device_events::device_event_stream)
                .service(device_events::device_events),
        )
        .service(
            scope("/api/v1/unlock-requests")
                .service(unlock_requests::approve_unlock)
                .service(unlock_requests::deny_unlock),
        )
        .service(scope("/api/v1/setting-definitions").service(setting_definitions::list_definitions))
        .service(
            scope("/api/v1/report-unsubscribe")
                .service(report_schedules::report_subscription)
                .service(report_schedules::report_unsubscribe),
        )
        .service(
            scope("/api/v1/users")
                .service(users::get_user)
                .service(users::user_devices)
                .service(users::link_device)
                .service(users::unlink_device)
                .service(users::transfer_device)
                .service(users::list_transfers)
                .service(users::accept_transfer)
                .service(users::decline_transfer)
                .service(users::cancel_transfer),
        )
        .service(
            scope("/api/admin/v1")
                .wrap(actix_web::middleware::from_fn(admin_guard::admin_mfa))
                .wrap(actix_web::middleware::from_fn(admin_guard::admin_allowlist))
                .wrap(actix_web::middleware::from_fn(admin_guard::core_routes))
                .service(admin::admin_me)
                .service(admin::admin_features)
                .service(dashboard::get_dashboard)
                .service(dashboard::get_statistics)
                .service(operator_health::get_health)
                .service(operator_health::get_health_report)
                .service(admin_activity::get_admin_activity)
                .service(admin_activity::export_admin_activity)
                .service(notifications::get_preferences)
                .service(notifications::put_preferences)
                .service(notifications::list_notifications)
                .service(notifications::read_all_notifications)
                .service(notifications::read_notification)
                .service(webhooks::list_event_types)
                .service(webhooks::list_webhooks)
                .service(webhooks::create_webhook)
                .service(webhooks::get_webhook)
                .service(webhooks::update_webhook)
                .service(webhooks::delete_webhook)
                .service(webhooks::rotate_webhook_secret)
                .service(webhooks::list_deliveries)
                .service(webhooks::test_webhook)
                .service(webhooks::get_delivery)
                .service(webhooks::redeliver)
                .service(jobs::list_jobs)
                .service(jobs::get_job)
                .service(jobs::job_result)
                .service(jobs::cancel_job)
                .service(admin_user_mfa::set_mfa_exemption)
                .service(admin_user_mfa::remove_mfa_exemption)
                .service(admin_user_mfa::reset_mfa)
                .service(database::rls_status)
                .service(database::change_rls)
                .service(ip_allowlist::allowlist_settings)
                .service(ip_allowlist::set_allowlist_settings)
                .service(ip_allowlist::list_bypass_tokens)
                .service(ip_allowlist::create_bypass_token)
                .service(ip_allowlist::revoke_bypass_token)
                .service(ip_allowlist::list_allowlist)
                .service(ip_allowlist::create_allowlist_entry)
                .service(ip_allowlist::update_allowlist_entry)
                .service(ip_allowlist::delete_allowlist_entry)
                .service(admin_user_search::list_users)
                .service(admin_users::create_user)
                .service(admin_bulk::bulk_users)
                .service(imports::import_accounts)
                .service(admin_user_search::export_users)
                .service(admin_user_search::export_users_job)
                .service(admin::admin_get_user)
                .service(user_quotas::get_user_quotas)
                .service(user_quotas::set_user_quotas)
                .service(admin_users::update_user)
                .service(api_keys::list_api_keys)
                .service(api_keys::create_api_key)
                .service(api_keys::revoke_api_key)
                .service(api_keys::rotate_api_key)
                .service(admin_groups::list_groups)
                // Before `/groups/{groupId}`, which would take `export` for an id.
                .service(admin_groups::export_groups)
                .service(admin_groups::export_groups_job)
                .service(admin_groups::get_group)
                .service(config_backup::export_config)
                .service(config_backup::import_config)
                .service(report_schedules::list_report_schedules)
                .service(report_schedules::create_report_schedule)
                .service(report_schedules::get_report_schedule)
                .service(report_schedules::update_report_schedule)
                .service(report_schedules::delete_report_schedule)
                .service(report_schedules::send_test_report)
                .service(device_events::organization_event_counts)
                .service(device_events::organization_event_stream)
                .service(device_events::organization_events)
                .service(device_events::get_event_retention)
                .service(device_events::set_event_retention)
                .service(admin_groups::transfer_group)
                .service(roles::list_roles)
                .service(roles::get_role)
                .service(roles::create_role)
                .service(roles::update_role)
                .service(roles::delete_role)
                .service(admin_user_roles::set_user_roles)
                .service(admin_user_roles::grant_user_role)
                .service(admin_user_roles::revoke_user_role)
                .service(admin_users::delete_user)
                .service(admin_users::lock_user)
                .service(admin_users::admin_reset_password)
                .service(admin_users::admin_verify_email)
                .service(admin_users::unlock_user)
                .service(admin_users::user_sessions)
                .service(admin_users::revoke_user_session)
                .service(admin_users::revoke_user_sessions)
                .service(federation::get_role_overrides)
                .service(federation::put_role_overrides)
                .service(federation::delete_role_overrides)
                .service(setting_definitions::create_definition)
                .service(setting_definitions::update_definition)
                .service(setting_definitions::delete_definition)
                .service(setting_definitions::list_push_notifications)
                .service(audit::export_audit_logs)
                .service(audit::export_audit_logs_job)
                .service(audit::verify_audit_logs)
                .service(audit::list_audit_logs)
                .service(organizations::create_organization)
                .service(organizations::list_organizations)
                .service(org_quotas::get_quotas)
                .service(org_quotas::set_quotas)
                .service(organizations::get_organization)
                .service(organizations::update_organization)
                .service(organizations::delete_organization)
                .service(organizations::organization_usage)
                // Fixed segment before `{userId}`.
                .service(imports::import_org_users)
                .service(organizations::list_org_users)
                .service(organizations::export_org_users)
                .service(organizations::add_org_user)
                .service(organizations::change_org_user_role)
                .service(organizations::remove_org_user)
                .service(policies::list_policies)
                .service(policies::create_policy)
                .service(policies::get_policy)
                .service(policies::update_policy)
                .service(policies::delete_policy)
                .service(policy_application::apply_policy)
                .service(policy_application::unapply_policy)
                .service(fleet_groups::list_fleet_groups)
                .service(fleet_groups::create_fleet_group)
                .service(enrollment_tokens::create_enrollment_token)
                .service(enrollment_tokens::list_enrollment_tokens)
                .service(enrollment_tokens::get_enrollment_token)
                .service(enrollment_tokens::revoke_enrollment_token)
                .service(enrollment_tokens::enrollment_token_qr)
                .service(fleet_devices::list_fleet_devices)
                // Fixed segments before `{deviceId}`.
                .service(imports::import_fleet_devices)
                .service(fleet_devices::export_fleet_devices)
                .service(fleet_devices::get_fleet_device)
                .service(fleet_devices::assign_fleet_device)
                .service(fleet_devices::suspend_fleet_device)
                .service(fleet_devices::resume_fleet_device)
                .service(fleet_devices::retire_fleet_device)
                .service(fleet_devices::wipe_fleet_device)
                .service(fleet_devices::fleet_device_commands)
                .service(fleet_devices::fleet_device_settings),
        );
}

/// The OpenAPI document of the routes above, as served.
pub fn openapi() -> serde_json::Value {
    let (_, spec) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    let mut spec = spec;
    openapi::complete(&mut spec);
    openapi::polish(&spec)
}

/// [`openapi`] serialised, as `GET /api-docs/openapi.json` serves it: build it once and hand
/// it to every worker in [`HttpSettings::openapi`].
pub fn openapi_document() -> web::Bytes {
    // A `Value` always serialises (its keys are strings); "{}" is only a formality.
    serde_json::to_vec(&openapi())
        .unwrap_or_else(|_| b"{}".to_vec())
        .into()
}

/// The complete application for one worker.
pub fn app(
    state: AppState,
    settings: HttpSettings,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = settings.body_limit;
    let mail_pages = settings.mail_pages;
    let cors_enabled = !settings.cors_allowed_origins.is_empty();
    let cors = cors(settings.cors_allowed_origins);
    // The document comes built: the routes' own path items (collected as they register) are
    // all this worker makes of it.
    let (app, _) = App::new()
        .into_utoipa_app()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(TrustedProxies(settings.trusted_proxies)))
        .configure(routes)
        .split_for_parts();
    let document = settings.openapi.unwrap_or_else(openapi_document);
    app.configure(|config| extractors::configure(config, body_limit))
        .configure(|config| swagger::configure(config, &document))
        .route("/docs", web::get().to(redirect_to_docs))
        .configure(|config| pages::configure(config, mail_pages))
        .default_service(web::to(unknown_route))
        // Inside the request context, so preflight answers carry X-Request-Id too.
        .wrap(actix_web::middleware::Condition::new(cors_enabled, cors))
        .wrap(actix_web::middleware::from_fn(middleware::request_context))
}

/// The management app for `STEWARD_METRICS_BIND`: `GET /metrics` (Prometheus) and `GET /health`
/// only, off the public port.
pub fn management_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Response = ServiceResponse<impl MessageBody>,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .route(
            "/metrics",
            web::get().to(|state: web::Data<AppState>| async move { health::render_metrics(&state) }),
        )
        .service(health::liveness)
        .default_service(web::to(unknown_route))
}

/// Cross-origin access for the configured browser origins only (exact match; requests from
/// other origins get no CORS headers, their preflights are refused). Tokens travel in the
/// `Authorization` header, never cookies, so credentials mode stays off.
fn cors(origins: Vec<String>) -> actix_cors::Cors {
    use actix_web::http::header::{self, HeaderName};
    let origins: std::collections::HashSet<String> = origins.into_iter().collect();
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|origin| origins.contains(origin)))
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-device-id"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            header::LOCATION,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600)
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// Route handlers are guarded by method, so a known path with another method lands here too:
/// that is a 405, anything else a 404.
async fn unknown_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    if request.resource_map().has_resource(request.path()) {
        return Err(ApiError::for_status(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        ));
    }
    Err(ApiError::not_found("no such route"))
}

#[cfg(test)]
mod shell_tests;
