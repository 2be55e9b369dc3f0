//! Finding the RS256 signing keys at start: configured PEM files, or development keys under the
//! data directory, generated on first start so `cargo run` needs no setup.

use std::fs;
use std::path::{Path, PathBuf};

use steward_auth::SigningKeyPem;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("STEWARD_JWT_PRIVATE_KEYS: {path}: {reason}")]
    Configured { path: PathBuf, reason: String },
    #[error("development keys in {dir}: {reason}")]
    Development { dir: PathBuf, reason: String },
}

/// The signing keys in effect, oldest first.
pub fn load_or_generate(config: &Config) -> Result<Vec<SigningKeyPem>, KeyLoadError> {
    if !config.jwt_private_keys.is_empty() {
        return config
            .jwt_private_keys
            .iter()
            .map(|path| {
                read_key(path).map_err(|reason| KeyLoadError::Configured {
                    path: path.clone(),
                    reason,
                })
            })
            .collect();
    }
    let dir = config.keys_dir();
    let development = |reason: String| KeyLoadError::Development {
        dir: dir.clone(),
        reason,
    };
    let mut paths = pem_files(&dir).map_err(development)?;
    if paths.is_empty() {
        let path = write_new_key(&dir).map_err(development)?;
        tracing::warn!(
            path = %path.display(),
            "no signing key configured: generated a development key; set STEWARD_JWT_PRIVATE_KEYS in production"
        );
        paths.push(path);
    }
    paths
        .iter()
        .map(|path| read_key(path).map_err(|reason| development(format!("{}: {reason}", path.display()))))
        .collect()
}

fn read_key(path: &Path) -> Result<SigningKeyPem, String> {
    let pem = fs::read_to_string(path).map_err(|error| error.to_string())?;
    SigningKeyPem::parse(pem).map_err(|error| error.to_string())
}

/// `*.pem` files of a directory in name order; names start with their creation time, so this
/// is oldest first.
fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|error| error.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The key that seals TOTP secrets (base64 of 32 bytes): `STEWARD_MFA_ENCRYPTION_KEY`, or in
/// development `<data_dir>/keys/mfa-encryption.key`, generated on first start (with a
/// warning). Losing it makes every enrolled second factor unusable.
pub fn mfa_encryption_key(config: &Config) -> Result<String, KeyLoadError> {
    if let Some(key) = &config.mfa_encryption_key {
        return Ok(key.trim().to_owned());
    }
    let dir = config.keys_dir();
    let path = dir.join("mfa-encryption.key");
    let development = |reason: String| KeyLoadError::Development {
        dir: dir.clone(),
        reason,
    };
    if !path.exists() {
        fs::create_dir_all(&dir).map_err(|error| development(error.to_string()))?;
        let key = steward_auth::mfa::SecretBox::generate_key();
        match write_private(&path, &key) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "no MFA encryption key configured: generated a development key; set STEWARD_MFA_ENCRYPTION_KEY in production"
            ),
            // Another process wrote it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(development(format!("{}: {error}", path.display()))),
        }
    }
    fs::read_to_string(&path)
        .map(|key| key.trim().to_owned())
        .map_err(|error| development(format!("{}: {error}", path.display())))
}

/// Generates a key into `dir`, readable by the owner only.
pub fn write_new_key(dir: &Path) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|error| error.to_string())?;
    let key = SigningKeyPem::generate().map_err(|error| error.to_string())?;
    let name = format!("signing-{}.pem", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let path = dir.join(name);
    write_private(&path, key.as_str()).map_err(|error| error.to_string())?;
    Ok(path)
}

/// Writes a secret file with mode 0600 on Unix.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        fs::write(path, contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_generates_one_key_and_later_starts_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = load_or_generate(&config).unwrap();
        let second = load_or_generate(&config).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].as_str(), second[0].as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = pem_files(&config.keys_dir()).unwrap().remove(0);
            assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_key_that_is_not_a_key_names_the_setting_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        fs::write(&path, "garbage").unwrap();
        let config = Config {
            jwt_private_keys: vec![path.clone()],
            ..Config::default()
        };
        let message = load_or_generate(&config).unwrap_err().to_string();
        assert!(message.starts_with("STEWARD_JWT_PRIVATE_KEYS"), "{message}");
        assert!(message.contains("bad.pem"), "{message}");
    }
}
