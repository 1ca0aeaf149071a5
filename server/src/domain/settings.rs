//! Tenant settings: how a change is applied and what a valid setting is.
//!
//! The stored [`TenantSettings`] is the one definition of what a tenant can
//! set. Everything else reaches its fields through their serde names: a
//! change is a JSON object merged into the stored settings and read back
//! (so the API body, the CLI's `--set key=value` and the demo tenant share one
//! path, `domain::patch`), and `RULES` holds one rule per setting. Tests
//! fail when a stored setting has no rule, or is missing from the API schema.
//!
//! Pure: nothing here reads the store or the clock.

use serde_json::{Map, Value};

use super::patch::{Patch, Rule, Ruled};
use super::{DisplayName, Error, Result};
use crate::ids::TenantId;
use crate::store::{TenantRecord, TenantSettings};

/// Changes to a tenant: its display name, and settings by name.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    name: Option<String>,
    settings: Patch<TenantSettings>,
}

impl TenantChanges {
    /// Changes that set the display name.
    pub fn name(name: impl Into<String>) -> TenantChanges {
        TenantChanges { name: Some(name.into()), settings: Patch::default() }
    }

    /// Changes from a JSON object of `name` and settings; `null` means "leave
    /// as is", as a left-out field does. Unknown keys are refused.
    pub fn from_json(object: Map<String, Value>) -> Result<TenantChanges> {
        let mut changes = TenantChanges::default();
        for (key, value) in object {
            match (key.as_str(), value) {
                ("name", Value::String(name)) => changes.name = Some(name),
                ("name", Value::Null) => {}
                ("name", _) => return Err(Error::InvalidName),
                (_, value) => changes.settings.set(&key, value)?,
            }
        }
        Ok(changes)
    }

    /// Sets one setting from the CLI's `key=value` (see [`Patch::set_text`]).
    pub fn set_text(&mut self, assignment: &str) -> Result<()> {
        Ok(self.settings.set_text(assignment)?)
    }

    /// Applies the changes to `tenant` and validates the result; the one place
    /// both tenant creation (over the defaults) and updates go through.
    pub(super) fn apply(&self, tenant: &mut TenantRecord) -> Result<()> {
        let name = self.name.as_deref().map(DisplayName::parse).transpose()?;
        tenant.settings = self.settings.apply(&tenant.settings)?;
        if let Some(name) = name {
            tenant.name = name.into_inner();
        }
        Ok(())
    }
}

#[cfg(test)]
impl TenantChanges {
    /// [`TenantChanges::apply`], for tests of the layers that build changes.
    pub(crate) fn apply_for_test(&self, tenant: &mut TenantRecord) -> Result<()> {
        self.apply(tenant)
    }
}

/// The `aud` of the tenant's access tokens: the setting, or the tenant id when it is empty.
pub fn effective_audience(tenant: &TenantId, settings: &TenantSettings) -> String {
    if settings.audience.is_empty() { tenant.to_string() } else { settings.audience.clone() }
}

/// The names of every stored setting, as the API and the CLI spell them.
pub fn setting_names() -> Vec<String> {
    super::patch::field_names::<TenantSettings>()
}

impl Ruled for TenantSettings {
    const OF: &'static str = "tenant";
    const RULES: &'static [Rule<TenantSettings>] = RULES;

    /// Sorted, duplicate-free lists, so equal settings compare and store equal.
    fn normalize(&mut self) {
        for scopes in self.roles.values_mut() {
            sort_dedup(scopes);
        }
        sort_dedup(&mut self.default_roles);
    }
}

fn sort_dedup(values: &mut Vec<String>) {
    values.sort_unstable();
    values.dedup();
}

/// One rule per stored setting (a test checks that none is missing).
const RULES: &[Rule<TenantSettings>] = &[
    Rule::within("access_token_ttl", 60, 86_400, "seconds"),
    Rule::within("refresh_token_ttl", 300, 366 * 86_400, "seconds"),
    Rule::within("password_min_length", 8, 256, "characters"),
    Rule {
        setting: "audience",
        expected: "a string of at most 512 bytes without control characters (empty: the tenant id)",
        holds: |s| s.audience.len() <= 512 && !s.audience.chars().any(char::is_control),
        range: None,
    },
    Rule {
        setting: "roles",
        expected: "an object of at most 64 roles (a-z, 0-9, '-', '_', ':', '.') to at most 64 scopes each, \
                   defining `admin`",
        holds: |s| {
            s.roles.len() <= MAX_ROLES
                && s.roles.contains_key(ADMIN_ROLE)
                && s.roles.iter().all(|(role, scopes)| {
                    is_role_name(role)
                        && scopes.len() <= MAX_SCOPES_PER_ROLE
                        && scopes.iter().all(|s| is_scope_token(s))
                })
        },
        range: None,
    },
    Rule {
        setting: "default_roles",
        expected: "a list of roles the tenant defines",
        holds: |s| s.default_roles.iter().all(|role| s.roles.contains_key(role)),
        range: None,
    },
    Rule { setting: "email_claim", expected: "true or false", holds: |_| true, range: None },
    Rule {
        setting: "cors_allowed_origins",
        expected: "at most 100 origins such as `https://app.example` or `http://localhost:5173`",
        holds: |s| s.cors_allowed_origins.len() <= 100 && s.cors_allowed_origins.iter().all(|o| is_origin(o)),
        range: None,
    },
    Rule::within("refresh_grace_seconds", 0, 300, "seconds"),
    Rule { setting: "key_rotation_days", expected: "a number of days (0: never)", holds: |_| true, range: None },
    Rule::within("audit_retention", 10, 1_000_000, "events"),
    Rule::within("lockout_threshold", 0, 100, "failures (0: never)"),
    Rule::within("lockout_base_seconds", 1, 86_400, "seconds"),
    Rule {
        setting: "lockout_max_seconds",
        expected: "lockout_base_seconds to 604800 seconds",
        holds: |s| (s.lockout_base_seconds..=7 * 86_400).contains(&s.lockout_max_seconds),
        range: None,
    },
    Rule { setting: "email_verification", expected: "off, optional or required", holds: |_| true, range: None },
    Rule {
        setting: "reset_password_url",
        expected: "empty, or an http(s) URL of at most 2048 bytes without a fragment",
        holds: |s| is_page_url(&s.reset_password_url),
        range: None,
    },
    Rule {
        setting: "verify_email_url",
        expected: "empty, or an http(s) URL of at most 2048 bytes without a fragment",
        holds: |s| is_page_url(&s.verify_email_url),
        range: None,
    },
    Rule { setting: "registration", expected: "open or closed", holds: |_| true, range: None },
];

/// Empty, or an http(s) URL of at most 2048 bytes without spaces, controls
/// or a fragment (mail links append `tenant` and `token` to its query).
fn is_page_url(url: &str) -> bool {
    url.is_empty()
        || ((url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && !url.contains('#')
            && !url.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// The role that grants the tenant admin API; every tenant keeps it.
pub const ADMIN_ROLE: &str = "admin";
const MAX_ROLES: usize = 64;
const MAX_SCOPES_PER_ROLE: usize = 64;

/// A role name: 1-64 characters of a-z, 0-9, '-', '_', ':' and '.'.
pub fn is_role_name(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_:.".contains(&b))
}

/// An RFC 6749 §3.3 scope token (printable ASCII but space, `"` and `\`), at most 128 bytes.
pub(super) fn is_scope_token(scope: &str) -> bool {
    (1..=128).contains(&scope.len())
        && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A browser origin: `http(s)://host[:port]`, nothing after it.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| if port.parse::<u16>().is_ok() { host } else { "" });
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '[' || c == ']' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("acme").expect("valid id"),
            name: "acme".into(),
            algorithm: latch_shared::Algorithm::EdDSA,
            created_at: 0,
            settings: TenantSettings::default(),
            introspection_secret_sha256: None,
        }
    }

    fn changes(object: Value) -> TenantChanges {
        let Value::Object(object) = object else { panic!("not an object") };
        TenantChanges::from_json(object).expect("known settings")
    }

    /// The error a change gets, as (setting, accepted).
    fn outcome(object: Value) -> std::result::Result<(), String> {
        match changes(object).apply(&mut tenant()) {
            Ok(()) => Ok(()),
            Err(Error::InvalidSetting(invalid)) => Err(invalid.setting),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn every_stored_setting_has_exactly_one_rule() {
        let mut ruled: Vec<&str> = RULES.iter().map(|rule| rule.setting).collect();
        ruled.sort_unstable();
        let before = ruled.len();
        ruled.dedup();
        assert_eq!(before, ruled.len(), "a setting has two rules");
        let mut stored = setting_names();
        stored.sort_unstable();
        assert_eq!(stored, ruled);
    }

    #[test]
    fn the_defaults_satisfy_every_rule() {
        assert_eq!(super::super::patch::validate(&TenantSettings::default()), Ok(()));
    }

    #[test]
    fn each_setting_refuses_values_out_of_range_and_names_itself() {
        let table = [
            (json!({"access_token_ttl": 59}), Err("access_token_ttl")),
            (json!({"access_token_ttl": 60}), Ok(())),
            (json!({"access_token_ttl": 86_401}), Err("access_token_ttl")),
            (json!({"refresh_token_ttl": 299}), Err("refresh_token_ttl")),
            (json!({"refresh_token_ttl": 366 * 86_400}), Ok(())),
            (json!({"audience": "a\u{7}b"}), Err("audience")),
            (json!({"audience": "x".repeat(513)}), Err("audience")),
            (json!({"password_min_length": 7}), Err("password_min_length")),
            (json!({"password_min_length": 256}), Ok(())),
            (json!({"default_roles": ["nobody"]}), Err("default_roles")),
            (json!({"roles": {"user": ["openid"]}}), Err("roles")),
            (json!({"roles": {"admin": ["a b"]}}), Err("roles")),
            (json!({"roles": {"Admin": [], "admin": []}, "default_roles": []}), Err("roles")),
            (json!({"roles": {"admin": ["admin"]}, "default_roles": ["admin"]}), Ok(())),
            (json!({"email_claim": "yes"}), Err("email_claim")),
            (json!({"cors_allowed_origins": ["https://app.example/"]}), Err("cors_allowed_origins")),
            (json!({"refresh_grace_seconds": 301}), Err("refresh_grace_seconds")),
            (json!({"key_rotation_days": -1}), Err("key_rotation_days")),
            (json!({"audit_retention": 9}), Err("audit_retention")),
            (json!({"lockout_threshold": 101}), Err("lockout_threshold")),
            (json!({"lockout_base_seconds": 0}), Err("lockout_base_seconds")),
            (json!({"lockout_base_seconds": 600, "lockout_max_seconds": 599}), Err("lockout_max_seconds")),
            (json!({"email_verification": "sometimes"}), Err("email_verification")),
            (json!({"email_verification": "required"}), Ok(())),
            (json!({"reset_password_url": "https://app.example/reset#x"}), Err("reset_password_url")),
            (json!({"verify_email_url": "ftp://app.example/verify"}), Err("verify_email_url")),
            (json!({"registration": "invite-only"}), Err("registration")),
            (json!({"registration": "closed"}), Ok(())),
        ];
        for (change, expected) in table {
            assert_eq!(outcome(change.clone()), expected.map_err(str::to_owned), "{change}");
        }
    }

    #[test]
    fn the_error_states_the_range() {
        let err = changes(json!({"access_token_ttl": 5})).apply(&mut tenant()).expect_err("out of range");
        assert_eq!(err.to_string(), "invalid tenant setting `access_token_ttl`: expected 60-86400 seconds");
    }

    #[test]
    fn unknown_settings_are_refused_with_the_known_names() {
        let Value::Object(object) = json!({"acess_token_ttl": 600}) else { unreachable!() };
        let Err(Error::InvalidSetting(invalid)) = TenantChanges::from_json(object) else { panic!("accepted") };
        assert_eq!(invalid.setting, "acess_token_ttl");
        assert!(invalid.expected.contains("access_token_ttl"), "{}", invalid.expected);
    }

    #[test]
    fn null_leaves_a_setting_as_it_is_and_lists_are_sorted() {
        let mut record = tenant();
        changes(json!({"audience": null, "default_roles": ["user", "admin", "user"]}))
            .apply(&mut record)
            .expect("valid");
        assert_eq!(record.settings.audience, "");
        assert_eq!(record.settings.default_roles, ["admin", "user"]);
    }

    #[test]
    fn a_refused_change_leaves_the_record_untouched() {
        let mut record = tenant();
        let before = record.clone();
        assert!(changes(json!({"name": "Acme", "access_token_ttl": 1})).apply(&mut record).is_err());
        assert_eq!(record.settings, before.settings);
    }

    /// The CLI path: every stored setting, written as the CLI text of its
    /// default value, reads back to that value.
    #[test]
    fn every_setting_can_be_set_from_cli_text() {
        let defaults = serde_json::to_value(TenantSettings::default()).expect("serializes");
        for setting in setting_names() {
            let value = &defaults[&setting];
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                other => other.to_string(),
            };
            let mut changes = TenantChanges::default();
            changes.set_text(&format!("{setting}={text}")).unwrap_or_else(|e| panic!("{setting}: {e}"));
            assert_eq!(&changes.settings.fields()[&setting], value, "{setting}");
        }
        let mut changes = TenantChanges::default();
        changes.set_text("access_token_ttl=600").expect("number");
        changes.set_text("cors_allowed_origins=https://a.example, http://localhost:5173").expect("list");
        changes.set_text("roles={\"admin\":[\"admin\"]}").expect("object");
        changes.set_text("email_claim=true").expect("bool");
        changes.set_text("default_roles=").expect("empty list");
        let mut record = tenant();
        changes.apply(&mut record).expect("valid");
        assert_eq!(record.settings.access_token_ttl, 600);
        assert_eq!(record.settings.cors_allowed_origins, ["https://a.example", "http://localhost:5173"]);
        assert!(record.settings.email_claim && record.settings.default_roles.is_empty());
        assert!(TenantChanges::default().set_text("access_token_ttl=ten").is_err());
        assert!(TenantChanges::default().set_text("access_token_ttl").is_err());
    }

    #[test]
    fn the_audience_defaults_to_the_tenant_id() {
        let mut record = tenant();
        assert_eq!(effective_audience(&record.id, &record.settings), "acme");
        record.settings.audience = "api.acme.example".into();
        assert_eq!(effective_audience(&record.id, &record.settings), "api.acme.example");
    }

    #[test]
    fn cors_origins_are_scheme_host_and_optional_port_only() {
        for ok in ["https://app.example", "http://localhost:5173", "https://[::1]:8443", "https://a-b.example.org"] {
            assert!(is_origin(ok), "{ok}");
        }
        for bad in
            ["app.example", "ftp://x", "https://", "https://app.example/", "https://a.example/path", "https://a:b", "*"]
        {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
