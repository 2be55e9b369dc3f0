//! Accounts: email addresses, display names, the password rules and system roles.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An email address, trimmed and lower-cased so one mailbox is one account whatever the casing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("must be an email address like name@example.com")]
pub struct InvalidEmail;

impl EmailAddress {
    /// Accepts `local@domain.tld` of at most 254 characters, without spaces, control
    /// characters or invisible format characters (bidi overrides, zero-width spaces). Deliverability is proven by the verification mail, not by this check.
    pub fn parse(value: &str) -> Result<Self, InvalidEmail> {
        let normalised = value.trim().to_lowercase();
        let (local, domain) = normalised.rsplit_once('@').ok_or(InvalidEmail)?;
        let valid = !local.is_empty()
            && local.len() <= 64
            && normalised.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !local.contains('@')
            && normalised
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !crate::rules::is_hidden_format(c))
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if valid {
            Ok(Self(normalised))
        } else {
            Err(InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("must be 1 to 100 characters without control characters")]
pub struct InvalidDisplayName;

impl DisplayName {
    pub fn parse(value: &str) -> Result<Self, InvalidDisplayName> {
        let trimmed = value.trim();
        let length = trimmed.chars().count();
        let hidden = |c: char| c.is_control() || crate::rules::is_hidden_format(c);
        if (1..=100).contains(&length) && !trimmed.chars().any(hidden) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(InvalidDisplayName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Why an optional profile field is refused; the message is for the client.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidProfileField(pub &'static str);

/// An avatar: an http(s) URL of at most 2048 characters.
pub fn check_avatar_url(url: &str) -> Result<(), InvalidProfileField> {
    let ok = url.chars().count() <= 2048
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(InvalidProfileField(
            "must be an http(s) URL of at most 2048 characters",
        ))
    }
}

/// A BCP 47 language tag such as `en-GB`: letters, digits and hyphens, at most 35 characters.
pub fn check_locale(tag: &str) -> Result<(), InvalidProfileField> {
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(InvalidProfileField("must be a BCP 47 language tag such as en-GB"))
    }
}

/// An IANA time zone name such as `Europe/Berlin` (checked for shape, not against the database).
pub fn check_timezone(zone: &str) -> Result<(), InvalidProfileField> {
    let ok = !zone.is_empty()
        && zone.len() <= 64
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InvalidProfileField(
            "must be an IANA time zone such as Europe/Berlin",
        ))
    }
}

/// Why a new password is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WeakPassword {
    #[error("must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("must be at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("is one of the most common passwords; choose another")]
    Common,
    #[error("must not be your email address")]
    SameAsEmail,
    #[error("is too easy to guess (strength {strength} of 4, at least {required} needed): {hint}")]
    Guessable {
        strength: u8,
        required: u8,
        hint: String,
    },
    #[error("was one of your last {PASSWORD_HISTORY} passwords; choose a new one")]
    RecentlyUsed,
}

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// How many previous passwords may not be reused.
pub const PASSWORD_HISTORY: usize = 5;

/// The least zxcvbn strength (0–4) a new password needs unless configured otherwise
/// (`STEWARD_PASSWORD_MIN_STRENGTH`): 2 refuses what about a million guesses find.
pub const DEFAULT_PASSWORD_MIN_STRENGTH: u8 = 2;
/// How much of a password the strength estimate reads (zxcvbn's cost grows with length; a
/// password this long and still weak is weak).
const STRENGTH_CHARS: usize = 64;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Checks a new password against the rules that need no history: length in characters, the
/// bundled list of common passwords, the account's email, and a zxcvbn strength estimate (with
/// the email's parts as words an attacker would try) of at least `min_strength` (0–4; 0 turns
/// the estimate off). Reuse of the last [`PASSWORD_HISTORY`] passwords needs their hashes and
/// is checked by the caller, which reports [`WeakPassword::RecentlyUsed`].
pub fn check_password_rules(
    password: &str,
    email: &EmailAddress,
    min_strength: u8,
) -> Result<(), WeakPassword> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    let lowered = password.to_lowercase();
    if lowered == email.as_str() || email.as_str().split('@').next() == Some(lowered.as_str()) {
        return Err(WeakPassword::SameAsEmail);
    }
    let common = COMMON_PASSWORDS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line.trim() == lowered);
    if common {
        return Err(WeakPassword::Common);
    }
    if min_strength > 0 {
        let estimated: String = password.chars().take(STRENGTH_CHARS).collect();
        let (local, domain) = email.as_str().split_once('@').unwrap_or((email.as_str(), ""));
        let entropy = zxcvbn::zxcvbn(&estimated, &[email.as_str(), local, domain]);
        let strength = u8::from(entropy.score());
        if strength < min_strength {
            let hint = entropy
                .feedback()
                .and_then(|feedback| feedback.suggestions().first().map(ToString::to_string))
                .unwrap_or_else(|| "add another word or two; uncommon words are better".to_owned());
            return Err(WeakPassword::Guessable {
                strength,
                required: min_strength,
                hint,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(value: &str) -> EmailAddress {
        EmailAddress::parse(value).unwrap()
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(email("  Alice@Example.COM ").as_str(), "alice@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "a b@example.com",
            "alice@exa..mple.com",
            "alice@.example.com",
            "alice\u{202E}moc.evil@example.com",
            "ali\u{200B}ce@example.com",
            "alice@exam\u{FEFF}ple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ann ").unwrap().as_str(), "Ann");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(
            DisplayName::parse("Ann\u{202E}nimda").is_err(),
            "a right-to-left override"
        );
        assert!(DisplayName::parse("Ann\u{2066}x\u{2069}").is_err());
        assert!(
            DisplayName::parse("👨\u{200D}👩\u{200D}👧 family").is_ok(),
            "the joiner of emoji sequences stays"
        );
    }

    #[test]
    fn profile_fields_table() {
        assert!(check_avatar_url("https://example.com/a.png").is_ok());
        assert!(check_avatar_url("javascript:alert(1)").is_err());
        assert!(check_avatar_url(&format!("https://x/{}", "a".repeat(2048))).is_err());
        assert!(check_locale("en-GB").is_ok());
        assert!(check_locale("zh-Hant-TW").is_ok());
        assert!(check_locale("en--GB").is_err());
        assert!(check_locale("en_GB").is_err());
        assert!(check_timezone("America/Argentina/Buenos_Aires").is_ok());
        assert!(check_timezone("Etc/GMT+5").is_ok());
        assert!(check_timezone("Not a zone!").is_err());
    }

    #[test]
    fn password_rules_table() {
        let owner = email("alice@example.com");
        let strength = DEFAULT_PASSWORD_MIN_STRENGTH;
        let cases: &[(&str, Result<(), WeakPassword>)] = &[
            ("short1!", Err(WeakPassword::TooShort)),
            ("correct horse battery staple", Ok(())),
            ("Password123", Err(WeakPassword::Common)),
            ("QWERTYUIOP", Err(WeakPassword::Common)),
            ("alice@example.com", Err(WeakPassword::SameAsEmail)),
            ("ALICE@EXAMPLE.COM", Err(WeakPassword::SameAsEmail)),
            ("ünïcödé-pässwörd", Ok(())),
        ];
        for (password, expected) in cases {
            assert_eq!(
                &check_password_rules(password, &owner, strength),
                expected,
                "{password}"
            );
        }
        assert_eq!(
            check_password_rules(&"a".repeat(129), &owner, strength),
            Err(WeakPassword::TooLong)
        );
        // Length counts characters, not bytes: seven two-byte characters are too short.
        assert_eq!(
            check_password_rules("ééééééé", &owner, strength),
            Err(WeakPassword::TooShort)
        );
    }

    #[test]
    fn guessable_passwords_the_list_misses_are_refused_by_strength() {
        let owner = email("alice@example.com");
        for password in [
            "Password123!",
            "letmein2024",
            "11111111a",
            "ab".repeat(64).as_str(),
            "aaaaaaaaaaaa",
        ] {
            let refused = check_password_rules(password, &owner, DEFAULT_PASSWORD_MIN_STRENGTH);
            assert!(
                matches!(refused, Err(WeakPassword::Guessable { required: 2, .. })),
                "{password}: {refused:?}"
            );
        }
        for password in [
            "correct horse battery staple",
            "a long admin passphrase",
            "Tr0ub4dor&3-quasar",
        ] {
            assert_eq!(
                check_password_rules(password, &owner, DEFAULT_PASSWORD_MIN_STRENGTH),
                Ok(()),
                "{password}"
            );
        }
        // 0 turns the estimate off; 4 asks for the strongest.
        assert_eq!(check_password_rules("letmein2024", &owner, 0), Ok(()));
        assert!(check_password_rules("letmein2024", &owner, 4).is_err());
    }

    #[test]
    fn the_bundled_list_holds_only_passwords_the_length_rule_lets_through() {
        let entries: Vec<&str> = COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert!(entries.len() > 100);
        assert!(
            entries
                .iter()
                .all(|entry| entry.chars().count() >= MIN_PASSWORD_CHARS)
        );
    }
}
