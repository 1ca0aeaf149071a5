//! Changes to a record given as JSON values by field name, applied through
//! serde: the one path by which the API's bodies, the CLI's `--set
//! key=value` and start-up defaults change tenant settings and clients, so
//! a field added to the stored record is settable everywhere at once. Each
//! settable record lists one [`Rule`] per field ([`Ruled::RULES`]); tests
//! check that no field lacks one.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A setting that is unknown, of the wrong type or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {of} setting `{setting}`: expected {expected}")]
pub struct InvalidSetting {
    /// What it is a setting of (`tenant`, `client`).
    pub of: &'static str,
    /// The setting's name, as the API and the CLI spell it.
    pub setting: String,
    /// What a valid value looks like (the range, or the choices).
    pub expected: String,
}

/// What one field must satisfy.
pub struct Rule<T: 'static> {
    /// The field's serde name.
    pub setting: &'static str,
    /// What a valid value looks like, for error messages and help; with a
    /// `range`, the unit that follows it ("60-86400 seconds").
    pub expected: &'static str,
    /// Whether the record satisfies the rule (a rule may look at other fields).
    pub holds: fn(&T) -> bool,
    /// A number's inclusive range: checked here, and stated in the OpenAPI
    /// document (`minimum`, `maximum`) from this one place.
    pub range: Option<(i64, i64)>,
}

fn anything<T>(_: &T) -> bool {
    true
}

impl<T: 'static> Rule<T> {
    /// A number from `min` to `max` (inclusive), in `unit`.
    pub const fn within(setting: &'static str, min: i64, max: i64, unit: &'static str) -> Rule<T> {
        Rule { setting, expected: unit, holds: anything::<T>, range: Some((min, max)) }
    }

    /// What a valid value looks like.
    pub fn expected(&self) -> String {
        match self.range {
            Some((min, max)) => format!("{min}-{max} {}", self.expected),
            None => self.expected.to_owned(),
        }
    }
}

/// A record whose fields are changed through a [`Patch`].
pub trait Ruled: Serialize + DeserializeOwned + Default + 'static {
    /// What errors call it (`tenant`, `client`).
    const OF: &'static str;
    /// One rule per field.
    const RULES: &'static [Rule<Self>];

    /// Puts equal values into one form (sorted lists) before the rules run.
    fn normalize(&mut self) {}
}

fn invalid<T: Ruled>(rule: &Rule<T>) -> InvalidSetting {
    InvalidSetting { of: T::OF, setting: rule.setting.to_owned(), expected: rule.expected() }
}

fn rule<T: Ruled>(setting: &str) -> Result<&'static Rule<T>, InvalidSetting> {
    T::RULES.iter().find(|rule| rule.setting == setting).ok_or_else(|| {
        let names: Vec<&str> = T::RULES.iter().map(|rule| rule.setting).collect();
        InvalidSetting { of: T::OF, setting: setting.to_owned(), expected: format!("one of {}", names.join(", ")) }
    })
}

/// Checks every rule of `record`; the first broken one is the error.
pub fn validate<T: Ruled>(record: &T) -> Result<(), InvalidSetting> {
    let fields = serde_json::to_value(record).unwrap_or_default();
    let in_range = |rule: &Rule<T>| match rule.range {
        Some((min, max)) => fields.get(rule.setting).and_then(Value::as_i64).is_some_and(|n| (min..=max).contains(&n)),
        None => true,
    };
    match T::RULES.iter().find(|rule| !in_range(rule) || !(rule.holds)(record)) {
        Some(rule) => Err(invalid(rule)),
        None => Ok(()),
    }
}

/// Changes to a `T`: fields by serde name, each replacing the current value.
#[derive(Debug, Clone)]
pub struct Patch<T> {
    fields: Map<String, Value>,
    of: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for Patch<T> {
    fn default() -> Patch<T> {
        Patch { fields: Map::new(), of: std::marker::PhantomData }
    }
}

impl<T: Ruled> Patch<T> {
    /// Sets one field to a JSON value (checked when applied); `null` leaves
    /// it as it is, as a left-out field does. Unknown fields are refused.
    pub fn set(&mut self, setting: &str, value: Value) -> Result<(), InvalidSetting> {
        rule::<T>(setting)?;
        if !value.is_null() {
            self.fields.insert(setting.to_owned(), value);
        }
        Ok(())
    }

    /// Sets one field from the CLI's `key=value`: the text is read by the
    /// field's JSON type (a number, `true`/`false`, a string, a
    /// comma-separated list, or a JSON object).
    pub fn set_text(&mut self, assignment: &str) -> Result<(), InvalidSetting> {
        let Some((setting, text)) = assignment.split_once('=') else {
            let expected = "`key=value`, with one of the setting names".to_owned();
            return Err(InvalidSetting { of: T::OF, setting: assignment.to_owned(), expected });
        };
        let rule = rule::<T>(setting)?;
        let default = defaults::<T>().remove(setting).unwrap_or(Value::Null);
        let value = value_from_text(&default, text).ok_or_else(|| invalid(rule))?;
        self.set(setting, value)
    }

    /// `record` with the changes applied, normalized and checked against every rule.
    pub fn apply(&self, record: &T) -> Result<T, InvalidSetting> {
        let mut changed = merge(record, &self.fields).map_err(|field| rule::<T>(&field).map_or_else(|e| e, invalid))?;
        changed.normalize();
        validate(&changed)?;
        Ok(changed)
    }

    /// The fields set, as JSON (for tests).
    #[cfg(test)]
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }
}

/// A store change that may be refused: `check` runs on the stored record
/// inside the store's atomic step (so two changes of different fields both
/// hold); its `Ok` replaces the record, its `Err` keeps it and is left in
/// `refused` (cleared when a retried step succeeds).
pub(super) fn checked<T>(
    stored: &mut T,
    refused: &mut Option<super::Error>,
    check: impl FnOnce(&T) -> super::Result<T>,
) -> crate::store::Change {
    match check(stored) {
        Ok(changed) => {
            *stored = changed;
            *refused = None;
            crate::store::Change::Write
        }
        Err(e) => {
            *refused = Some(e);
            crate::store::Change::Keep
        }
    }
}

/// The serde names of `T`'s fields.
pub fn field_names<T: Serialize + Default>() -> Vec<String> {
    defaults::<T>().keys().cloned().collect()
}

/// `record` with `changes` merged in, read back through serde. `Err` names
/// the first changed field whose value does not fit its type.
fn merge<T: Serialize + DeserializeOwned>(record: &T, changes: &Map<String, Value>) -> Result<T, String> {
    let Ok(Value::Object(mut merged)) = serde_json::to_value(record) else {
        return Err(String::new());
    };
    for (field, value) in changes {
        merged.insert(field.clone(), value.clone());
        // Read back after each field, so a value of the wrong type is named.
        serde_json::from_value::<T>(Value::Object(merged.clone())).map_err(|_| field.clone())?;
    }
    serde_json::from_value(Value::Object(merged)).map_err(|_| String::new())
}

/// The fields of `T` as serde names them, with their values in `T::default()`.
fn defaults<T: Serialize + Default>() -> Map<String, Value> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

/// A field's value from command-line text, read by the JSON type of the
/// field's default: a number, `true`/`false`, a comma-separated list (or a
/// JSON array), a JSON object, or the text itself.
fn value_from_text(default: &Value, text: &str) -> Option<Value> {
    Some(match default {
        Value::Number(_) => Value::Number(text.trim().parse::<u64>().ok()?.into()),
        Value::Bool(_) => Value::Bool(text.trim().parse().ok()?),
        Value::Array(_) if text.trim_start().starts_with('[') => serde_json::from_str(text).ok()?,
        Value::Array(_) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect(),
        Value::Object(_) => serde_json::from_str(text).ok()?,
        Value::String(_) | Value::Null => Value::String(text.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        count: u32,
        names: Vec<String>,
        on: bool,
    }

    #[test]
    fn a_merge_changes_only_the_given_fields_and_names_a_misfit() {
        let record = Sample { count: 1, names: vec!["a".into()], on: false };
        let Value::Object(changes) = json!({"on": true}) else { unreachable!() };
        assert_eq!(merge(&record, &changes), Ok(Sample { count: 1, names: vec!["a".into()], on: true }));
        let Value::Object(changes) = json!({"on": true, "count": "many"}) else { unreachable!() };
        assert_eq!(merge(&record, &changes), Err("count".into()));
    }

    #[test]
    fn text_is_read_by_the_type_of_the_default() {
        let fields = defaults::<Sample>();
        assert_eq!(value_from_text(&fields["count"], " 7 "), Some(json!(7)));
        assert_eq!(value_from_text(&fields["count"], "seven"), None);
        assert_eq!(value_from_text(&fields["on"], "true"), Some(json!(true)));
        assert_eq!(value_from_text(&fields["names"], "a, b,"), Some(json!(["a", "b"])));
        assert_eq!(value_from_text(&fields["names"], "[\"a,b\"]"), Some(json!(["a,b"])));
        assert_eq!(value_from_text(&fields["names"], ""), Some(json!([])));
    }
}
