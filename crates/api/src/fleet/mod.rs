//! Organization fleets at the HTTP edge: the response views. Enrollment, fleet actions,
//! commands, policy application and import live in `steward_app::fleet`.

pub mod views;

pub use steward_app::fleet::{FleetService, import, qr};
pub use views::{
    DeviceDiff, DeviceTokenView, EnrollmentOutcome, ImportError, ImportReport, PolicyApplication,
};
