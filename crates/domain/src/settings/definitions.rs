//! Setting definitions: a key's type, default, constraints and merge rule, and validation of
//! values against them.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Bool,
    Int,
    String,
    /// One of `constraints.allowed`.
    Enum,
    /// A set of strings (JSON array, duplicates dropped, sorted).
    StringSet,
    /// Any JSON, up to `constraints.maxLength` bytes when serialised.
    Json,
    /// A time of day, `HH:MM` on the 24-hour clock (`00:00` to `23:59`).
    Time,
}

impl ValueType {
    pub const ALL: [ValueType; 7] = [
        Self::Bool,
        Self::Int,
        Self::String,
        Self::Enum,
        Self::StringSet,
        Self::Json,
        Self::Time,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int => "int",
            Self::String => "string",
            Self::Enum => "enum",
            Self::StringSet => "string_set",
            Self::Json => "json",
            Self::Time => "time",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// How unlocked layers (and locks of one layer) combine (as Android resolves several admins'
/// policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MergeRule {
    /// The most specific layer wins.
    #[default]
    Override,
    /// The most restrictive value wins, by the order the definition declares.
    MostRestrictive,
    /// String sets are united.
    Union,
}

impl MergeRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::MostRestrictive => "most_restrictive",
            Self::Union => "union",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Override, Self::MostRestrictive, Self::Union]
            .into_iter()
            .find(|rule| rule.as_str() == value)
    }
}

/// Which values are more restrictive, for [`MergeRule::MostRestrictive`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Restrictiveness {
    /// For ints: a lower number is more restrictive (a screen-time limit).
    Lower,
    /// For ints: a higher number is more restrictive (a minimum passcode length).
    Higher,
    /// Listed values, most restrictive first (`[false, true]`, enum values).
    Order(Vec<Value>),
}

impl Restrictiveness {
    /// `Less` when `a` is more restrictive than `b`. Values outside a declared order rank after
    /// every listed value, then by their JSON text, so the order is total.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        match self {
            Self::Lower => a.as_i64().cmp(&b.as_i64()),
            Self::Higher => b.as_i64().cmp(&a.as_i64()),
            Self::Order(order) => {
                let rank = |v: &Value| order.iter().position(|o| o == v).unwrap_or(order.len());
                rank(a)
                    .cmp(&rank(b))
                    .then_with(|| a.to_string().cmp(&b.to_string()))
            }
        }
    }
}

/// Limits a value must respect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Constraints {
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Enum values, or the allowed members of a string set.
    pub allowed: Option<Vec<String>>,
    /// Characters of a string, members of a set, or bytes of JSON.
    pub max_length: Option<usize>,
    /// For `most_restrictive` definitions.
    pub restrictiveness: Option<Restrictiveness>,
}

/// A setting the catalog knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDefinition {
    pub key: String,
    pub value_type: ValueType,
    pub default_value: Value,
    pub constraints: Constraints,
    pub category: String,
    pub description: Option<String>,
    pub is_lockable: bool,
    pub merge_rule: MergeRule,
    pub sort_order: i32,
}

/// Why a value does not fit its definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(message: impl Into<String>) -> InvalidValue {
    InvalidValue(message.into())
}

/// A setting key: two or more lower-case dotted words (`location.sharing_enabled`), at most 100
/// characters. (One word is never a key, so `/settings/locks` and `/settings/sync` can't clash.)
pub fn validate_key(key: &str) -> Result<(), InvalidValue> {
    let well_formed = key.contains('.')
        && key.len() <= 100
        && key.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if well_formed {
        Ok(())
    } else {
        Err(invalid(
            "keys are lower-case dotted words, e.g. `location.sharing_enabled`",
        ))
    }
}

/// `HH:MM` (or `H:MM`) on the 24-hour clock.
fn parse_time_of_day(text: &str) -> Option<(u8, u8)> {
    let (hour, minute) = text.split_once(':')?;
    let digits = |part: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u8>().ok())
            .flatten()
    };
    let (hour, minute) = (digits(hour, 1..=2)?, digits(minute, 2..=2)?);
    (hour < 24 && minute < 60).then_some((hour, minute))
}

impl SettingDefinition {
    /// The value in canonical form if it fits the type and constraints.
    pub fn validate(&self, value: &Value) -> Result<Value, InvalidValue> {
        let c = &self.constraints;
        match self.value_type {
            ValueType::Bool => value
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| invalid("must be true or false")),
            ValueType::Int => {
                let number = value.as_i64().ok_or_else(|| invalid("must be a whole number"))?;
                if c.min.is_some_and(|min| number < min) || c.max.is_some_and(|max| number > max) {
                    return Err(invalid(format!(
                        "must be between {} and {}",
                        c.min.map_or("−∞".to_owned(), |v| v.to_string()),
                        c.max.map_or("∞".to_owned(), |v| v.to_string())
                    )));
                }
                Ok(Value::from(number))
            }
            ValueType::String => {
                let text = value.as_str().ok_or_else(|| invalid("must be a string"))?;
                let limit = c.max_length.unwrap_or(1000);
                if text.chars().count() > limit {
                    return Err(invalid(format!("must be at most {limit} characters")));
                }
                Ok(Value::String(text.to_owned()))
            }
            ValueType::Enum => {
                let text = value.as_str().ok_or_else(|| invalid("must be a string"))?;
                let allowed = c.allowed.as_deref().unwrap_or_default();
                if allowed.iter().any(|a| a == text) {
                    Ok(Value::String(text.to_owned()))
                } else {
                    Err(invalid(format!("must be one of: {}", allowed.join(", "))))
                }
            }
            ValueType::StringSet => {
                let items = value
                    .as_array()
                    .ok_or_else(|| invalid("must be an array of strings"))?;
                let mut set = Vec::with_capacity(items.len());
                for item in items {
                    let text = item
                        .as_str()
                        .ok_or_else(|| invalid("must be an array of strings"))?;
                    if let Some(allowed) = &c.allowed
                        && !allowed.iter().any(|a| a == text)
                    {
                        return Err(invalid(format!("`{text}` is not one of: {}", allowed.join(", "))));
                    }
                    set.push(text.to_owned());
                }
                set.sort();
                set.dedup();
                let limit = c.max_length.unwrap_or(500);
                if set.len() > limit {
                    return Err(invalid(format!("must have at most {limit} members")));
                }
                Ok(Value::from(set))
            }
            ValueType::Time => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid("must be a time of day, HH:MM"))?;
                parse_time_of_day(text)
                    .map(|(hour, minute)| Value::String(format!("{hour:02}:{minute:02}")))
                    .ok_or_else(|| invalid("must be a time of day, HH:MM from 00:00 to 23:59"))
            }
            ValueType::Json => {
                let limit = c.max_length.unwrap_or(16 * 1024);
                if value.to_string().len() > limit {
                    return Err(invalid(format!("must be at most {limit} bytes of JSON")));
                }
                Ok(value.clone())
            }
        }
    }

    /// A definition must be coherent before it enters the catalog: valid key, a default that
    /// validates, enum values for enums, an order for `most_restrictive`, sets for `union`.
    pub fn check(&self) -> Result<(), (&'static str, InvalidValue)> {
        validate_key(&self.key).map_err(|error| ("key", error))?;
        if self.value_type == ValueType::Enum && self.constraints.allowed.as_ref().is_none_or(Vec::is_empty) {
            return Err(("constraints", invalid("an enum needs `allowed` values")));
        }
        if let (Some(min), Some(max)) = (self.constraints.min, self.constraints.max)
            && min > max
        {
            return Err(("constraints", invalid("`min` must not exceed `max`")));
        }
        match self.merge_rule {
            MergeRule::MostRestrictive if self.constraints.restrictiveness.is_none() => {
                return Err((
                    "constraints",
                    invalid("`most_restrictive` needs `restrictiveness`"),
                ));
            }
            MergeRule::Union if self.value_type != ValueType::StringSet => {
                return Err(("mergeRule", invalid("`union` applies to string sets only")));
            }
            _ => {}
        }
        self.validate(&self.default_value)
            .map(|_| ())
            .map_err(|error| ("defaultValue", error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_of_day_are_hh_mm_on_the_24_hour_clock() {
        let time = definition(ValueType::Time, Constraints::default());
        for (given, canonical) in [
            ("21:00", "21:00"),
            ("7:05", "07:05"),
            ("00:00", "00:00"),
            ("23:59", "23:59"),
        ] {
            assert_eq!(time.validate(&json!(given)), Ok(json!(canonical)), "{given}");
        }
        for bad in [
            json!("25:99"),
            json!("24:00"),
            json!("12:60"),
            json!("soon"),
            json!("12:5"),
            json!("+1:00"),
            json!(2100),
            json!(""),
        ] {
            assert!(time.validate(&bad).is_err(), "{bad}");
        }
    }

    fn definition(value_type: ValueType, constraints: Constraints) -> SettingDefinition {
        SettingDefinition {
            key: "a.b".into(),
            value_type,
            default_value: json!(null),
            constraints,
            category: "test".into(),
            description: None,
            is_lockable: true,
            merge_rule: MergeRule::Override,
            sort_order: 0,
        }
    }

    #[test]
    fn values_are_checked_against_type_and_constraints() {
        let int = definition(
            ValueType::Int,
            Constraints {
                min: Some(0),
                max: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(int.validate(&json!(3)), Ok(json!(3)));
        assert!(int.validate(&json!(11)).is_err());
        assert!(int.validate(&json!("3")).is_err());
        assert!(int.validate(&json!(2.5)).is_err());
        let enumeration = definition(
            ValueType::Enum,
            Constraints {
                allowed: Some(vec!["low".into(), "high".into()]),
                ..Default::default()
            },
        );
        assert!(enumeration.validate(&json!("low")).is_ok());
        assert!(enumeration.validate(&json!("mid")).is_err());
        let set = definition(ValueType::StringSet, Constraints::default());
        assert_eq!(set.validate(&json!(["b", "a", "b"])), Ok(json!(["a", "b"])));
        assert!(set.validate(&json!(["a", 1])).is_err());
        assert!(
            definition(ValueType::Bool, Constraints::default())
                .validate(&json!(1))
                .is_err()
        );
    }

    #[test]
    fn keys_are_dotted_lower_case_words() {
        assert!(validate_key("location.sharing_enabled").is_ok());
        assert!(validate_key("screen_time.daily_limit_minutes").is_ok());
        for bad in ["", "Location.x", "a..b", ".a", "a.", "a b", "1a.b", "locks"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn restrictiveness_orders_totally() {
        let lower = Restrictiveness::Lower;
        assert_eq!(lower.compare(&json!(30), &json!(60)), Ordering::Less);
        let order = Restrictiveness::Order(vec![json!(false), json!(true)]);
        assert_eq!(order.compare(&json!(false), &json!(true)), Ordering::Less);
        assert_eq!(order.compare(&json!("x"), &json!(true)), Ordering::Greater);
    }

    #[test]
    fn incoherent_definitions_are_refused() {
        let mut d = definition(ValueType::Bool, Constraints::default());
        d.default_value = json!(true);
        assert!(d.check().is_ok());
        d.merge_rule = MergeRule::MostRestrictive;
        assert!(d.check().is_err());
        d.merge_rule = MergeRule::Union;
        assert!(d.check().is_err());
        d.merge_rule = MergeRule::Override;
        d.default_value = json!("yes");
        assert_eq!(d.check().map_err(|(field, _)| field), Err("defaultValue"));
    }
}
