//! Enrollment QR codes: the documented JSON payload, rendered as PNG or SVG by `qrcode`.

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Serialize;
use uuid::Uuid;

use crate::error::AppError;

/// What a device app reads from the QR code (docs/organizations.md).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentPayload<'a> {
    /// Payload format version.
    pub v: u8,
    /// Where to call `POST /api/v1/devices/enroll`.
    pub server_url: &'a str,
    pub organization_id: Uuid,
    pub enrollment_token: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrFormat {
    Png,
    Svg,
}

/// The image bytes and their content type; `size` is the minimum width in pixels.
pub fn render(
    payload: &EnrollmentPayload<'_>,
    format: QrFormat,
    size: u32,
) -> Result<(Vec<u8>, &'static str), AppError> {
    let text = serde_json::to_string(payload).map_err(|_| AppError::internal())?;
    render_text(&text, format, size)
}

/// Any text as a QR code image (the otpauth URI of a TOTP enrollment, too).
pub fn render_text(text: &str, format: QrFormat, size: u32) -> Result<(Vec<u8>, &'static str), AppError> {
    let code = QrCode::new(text.as_bytes()).map_err(|_| AppError::internal())?;
    match format {
        QrFormat::Svg => {
            let image = code
                .render::<svg::Color<'_>>()
                .min_dimensions(size, size)
                .quiet_zone(true)
                .build();
            Ok((image.into_bytes(), "image/svg+xml"))
        }
        QrFormat::Png => {
            let image = code
                .render::<Luma<u8>>()
                .min_dimensions(size, size)
                .quiet_zone(true)
                .build();
            let mut bytes = Cursor::new(Vec::new());
            image
                .write_to(&mut bytes, ImageFormat::Png)
                .map_err(|_| AppError::internal())?;
            Ok((bytes.into_inner(), "image/png"))
        }
    }
}
