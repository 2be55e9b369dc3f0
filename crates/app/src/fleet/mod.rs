//! Organization fleets: enrollment (tokens, QR codes, device tokens), fleet actions and
//! commands, policy application and bulk import.

pub mod import;
pub mod qr;
mod service;

pub use service::new_device_token;
pub use service::{
    DeviceDiff, DeviceTokenView, EnrollmentOutcome, FleetService, ImportError, ImportReport,
    PolicyApplication,
};
