//! A job's settings: validated from requests (errors name the field) and stored as columns
//! plus two JSON documents (source settings and scope rules).

use serde_json::{Value, json};
use syncguard_domain::{AttributeMatch, FieldError, ScopeRules, SourceAnchor, parse_email};
use syncguard_proto::v1::{self, DeprovisionMode, FileFormat, LdapScope, job_source};

const DEFAULT_INTERVAL_SECS: i64 = 30 * 60;
const DEFAULT_RETENTION_DAYS: u32 = 30;
const DEFAULT_HOLD_LIMIT_SECS: i64 = 7 * 24 * 3600;
const MAX_RECIPIENTS: usize = 50;

/// A validated job specification, ready to store.
#[derive(Debug, Clone)]
pub struct ValidJobSpec {
    /// Shown everywhere the job is.
    pub name: String,
    /// `push`, `file` or `ldap`.
    pub source_kind: &'static str,
    /// Kind-specific source settings (never a secret).
    pub source_config: Value,
    /// Scope rules.
    pub scope_rules: ScopeRules,
    /// Seconds between scheduled cycles.
    pub schedule_interval_secs: i32,
    /// `delete` or `disable`.
    pub deprovision_mode: &'static str,
    /// Notification recipients.
    pub recipients: Vec<String>,
    /// Soft-delete retention.
    pub retention_days: i32,
    /// Seconds a quarantine may wait for a decision.
    pub hold_limit_secs: i32,
    /// 1 or 2.
    pub required_approvals: i16,
    /// Stage deletes even when a read returns nothing.
    pub allow_empty_source: bool,
}

fn duration_secs(
    field: &str,
    value: Option<&prost_types::Duration>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i32, FieldError> {
    let seconds = match value {
        None => default,
        Some(duration) if duration.seconds == 0 && duration.nanos == 0 => default,
        Some(duration) => duration.seconds,
    };
    if !(min..=max).contains(&seconds) {
        return Err(FieldError::new(
            field,
            format!("{seconds}s is outside the allowed {min}s to {max}s"),
        ));
    }
    Ok(seconds as i32)
}

fn validate_source(source: Option<&v1::JobSource>) -> Result<(&'static str, Value), FieldError> {
    let kind = source
        .and_then(|source| source.kind.as_ref())
        .ok_or_else(|| {
            FieldError::new("spec.source", "a source is required: push, file or ldap")
        })?;
    match kind {
        job_source::Kind::Push(_) => Ok(("push", json!({}))),
        job_source::Kind::File(file) => {
            if file.path.trim().is_empty() {
                return Err(FieldError::new(
                    "spec.source.file.path",
                    "a file path is required",
                ));
            }
            let format = match FileFormat::try_from(file.format) {
                Ok(FileFormat::Ldif) => "ldif",
                Ok(FileFormat::Json) => "json",
                _ => {
                    return Err(FieldError::new(
                        "spec.source.file.format",
                        "choose FILE_FORMAT_LDIF or FILE_FORMAT_JSON",
                    ));
                }
            };
            let anchor_attribute =
                anchor_attribute("spec.source.file.anchor_attribute", &file.anchor_attribute)?;
            Ok((
                "file",
                json!({ "path": file.path.trim(), "format": format, "anchor_attribute": anchor_attribute }),
            ))
        }
        job_source::Kind::Ldap(ldap) => {
            if !(ldap.url.starts_with("ldap://") || ldap.url.starts_with("ldaps://")) {
                return Err(FieldError::new(
                    "spec.source.ldap.url",
                    "expected an ldap:// or ldaps:// URL",
                ));
            }
            if ldap.base_dn.trim().is_empty() {
                return Err(FieldError::new(
                    "spec.source.ldap.base_dn",
                    "a base DN is required",
                ));
            }
            if !ldap.password_file.is_empty() && !ldap.password_env.is_empty() {
                return Err(FieldError::new(
                    "spec.source.ldap.password_file",
                    "set password_file or password_env, not both",
                ));
            }
            if ldap.page_size > 10_000 {
                return Err(FieldError::new(
                    "spec.source.ldap.page_size",
                    "at most 10000 entries per page",
                ));
            }
            let scope = match LdapScope::try_from(ldap.scope) {
                Ok(LdapScope::Base) => "base",
                Ok(LdapScope::OneLevel) => "one",
                _ => "sub",
            };
            Ok((
                "ldap",
                json!({
                    "url": ldap.url, "starttls": ldap.starttls, "bind_dn": ldap.bind_dn,
                    "password_file": ldap.password_file, "password_env": ldap.password_env,
                    "base_dn": ldap.base_dn, "filter": ldap.filter, "scope": scope,
                    "attributes": ldap.attributes,
                    "page_size": if ldap.page_size == 0 { 500 } else { ldap.page_size },
                    "anchor_attribute": if ldap.anchor_attribute.is_empty() { "entryUUID" } else { ldap.anchor_attribute.as_str() },
                    "disabled_attribute": ldap.disabled_attribute, "disabled_value": ldap.disabled_value,
                }),
            ))
        }
    }
}

/// The anchor attribute of an LDIF file: entryUUID, objectGUID, or empty (detected per
/// entry).
pub fn anchor_attribute(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    ["entryUUID", "objectGUID"]
        .iter()
        .find(|known| known.eq_ignore_ascii_case(value))
        .map(|known| (*known).to_owned())
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!("{value:?} is not an anchor attribute: use entryUUID or objectGUID, or leave it empty to detect it"),
            )
        })
}

fn validate_scope(scope: Option<&v1::ScopeRules>) -> Result<ScopeRules, FieldError> {
    let Some(scope) = scope else {
        return Ok(ScopeRules::default());
    };
    let mut rules = ScopeRules::default();
    for (index, matcher) in scope.attribute_matches.iter().enumerate() {
        let field = format!("spec.scope.attribute_matches[{index}]");
        if matcher.attribute.trim().is_empty() {
            return Err(FieldError::new(
                format!("{field}.attribute"),
                "an attribute name is required",
            ));
        }
        if matcher.values.is_empty() {
            return Err(FieldError::new(
                format!("{field}.values"),
                "at least one value is required",
            ));
        }
        rules.attribute_matches.push(AttributeMatch {
            attribute: matcher.attribute.trim().to_owned(),
            values: matcher.values.clone(),
        });
    }
    for (index, base) in scope.base_dns.iter().enumerate() {
        if base.trim().is_empty() {
            return Err(FieldError::new(
                format!("spec.scope.base_dns[{index}]"),
                "a DN is required",
            ));
        }
        rules.base_dns.push(base.trim().to_owned());
    }
    if !scope.member_of_group_anchor.is_empty() {
        rules.member_of_group_anchor = SourceAnchor::parse(
            "spec.scope.member_of_group_anchor",
            &scope.member_of_group_anchor,
        )?
        .to_string();
    }
    Ok(rules)
}

/// Validates a job specification from a request.
pub fn validate(spec: Option<&v1::JobSpec>) -> Result<ValidJobSpec, FieldError> {
    let spec = spec.ok_or_else(|| FieldError::new("spec", "the job specification is required"))?;
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new(
            "spec.name",
            "a name of 1 to 200 characters is required",
        ));
    }
    let (source_kind, source_config) = validate_source(spec.source.as_ref())?;
    let scope_rules = validate_scope(spec.scope.as_ref())?;
    let schedule_interval_secs = duration_secs(
        "spec.schedule_interval",
        spec.schedule_interval.as_ref(),
        DEFAULT_INTERVAL_SECS,
        60,
        7 * 24 * 3600,
    )?;
    let deprovision_mode = match DeprovisionMode::try_from(spec.deprovision_mode) {
        Ok(DeprovisionMode::Unspecified | DeprovisionMode::Delete) => "delete",
        Ok(DeprovisionMode::Disable) => "disable",
        Err(_) => {
            return Err(FieldError::new(
                "spec.deprovision_mode",
                format!("{} is not a deprovision mode", spec.deprovision_mode),
            ));
        }
    };
    if spec.notification_recipients.len() > MAX_RECIPIENTS {
        return Err(FieldError::new(
            "spec.notification_recipients",
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    let recipients = spec
        .notification_recipients
        .iter()
        .enumerate()
        .map(|(index, address)| {
            parse_email(&format!("spec.notification_recipients[{index}]"), address)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let retention_days = match spec.retention_days {
        0 => DEFAULT_RETENTION_DAYS,
        days @ 1..=365 => days,
        days => {
            return Err(FieldError::new(
                "spec.retention_days",
                format!("{days} days is outside the allowed 1 to 365"),
            ));
        }
    };
    let hold_limit_secs = duration_secs(
        "spec.hold_limit",
        spec.hold_limit.as_ref(),
        DEFAULT_HOLD_LIMIT_SECS,
        3600,
        30 * 24 * 3600,
    )?;
    let required_approvals = match spec.required_approvals {
        0 | 1 => 1,
        2 => 2,
        other => {
            return Err(FieldError::new(
                "spec.required_approvals",
                format!("{other} approvers cannot be required; choose 1 or 2"),
            ));
        }
    };
    Ok(ValidJobSpec {
        name: name.to_owned(),
        source_kind,
        source_config,
        scope_rules,
        schedule_interval_secs,
        deprovision_mode,
        recipients,
        retention_days: retention_days as i32,
        hold_limit_secs,
        required_approvals,
        allow_empty_source: spec.allow_empty_source,
    })
}

/// Rebuilds the API's source message from its stored JSON.
pub fn source_to_proto(kind: &str, config: &Value) -> v1::JobSource {
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = match kind {
        "file" => job_source::Kind::File(v1::FileSource {
            anchor_attribute: text("anchor_attribute"),
            path: text("path"),
            format: match text("format").as_str() {
                "ldif" => FileFormat::Ldif as i32,
                "json" => FileFormat::Json as i32,
                _ => FileFormat::Unspecified as i32,
            },
        }),
        "ldap" => job_source::Kind::Ldap(v1::LdapSource {
            url: text("url"),
            starttls: config
                .get("starttls")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bind_dn: text("bind_dn"),
            password_file: text("password_file"),
            password_env: text("password_env"),
            base_dn: text("base_dn"),
            filter: text("filter"),
            scope: match text("scope").as_str() {
                "base" => LdapScope::Base as i32,
                "one" => LdapScope::OneLevel as i32,
                _ => LdapScope::Subtree as i32,
            },
            attributes: config
                .get("attributes")
                .and_then(Value::as_array)
                .map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            page_size: config
                .get("page_size")
                .and_then(Value::as_u64)
                .unwrap_or(500) as u32,
            anchor_attribute: text("anchor_attribute"),
            disabled_attribute: text("disabled_attribute"),
            disabled_value: text("disabled_value"),
        }),
        _ => job_source::Kind::Push(v1::PushSource {}),
    };
    v1::JobSource { kind: Some(kind) }
}

/// Rebuilds the API's scope message.
pub fn scope_to_proto(scope: &ScopeRules) -> v1::ScopeRules {
    v1::ScopeRules {
        attribute_matches: scope
            .attribute_matches
            .iter()
            .map(|matcher| v1::AttributeMatch {
                attribute: matcher.attribute.clone(),
                values: matcher.values.clone(),
            })
            .collect(),
        base_dns: scope.base_dns.clone(),
        member_of_group_anchor: scope.member_of_group_anchor.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_spec() -> v1::JobSpec {
        v1::JobSpec {
            name: "hr to directory".into(),
            source: Some(v1::JobSource {
                kind: Some(job_source::Kind::Push(v1::PushSource {})),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_products() {
        let valid = validate(Some(&push_spec())).unwrap();
        assert_eq!(valid.schedule_interval_secs, 1800);
        assert_eq!(valid.retention_days, 30);
        assert_eq!(valid.hold_limit_secs, 7 * 24 * 3600);
        assert_eq!(valid.deprovision_mode, "delete");
        assert_eq!(valid.required_approvals, 1);
    }

    #[test]
    fn bad_values_name_their_field() {
        let spec = v1::JobSpec {
            retention_days: 400,
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec)).unwrap_err().field,
            "spec.retention_days"
        );
        let spec = v1::JobSpec {
            notification_recipients: vec!["ops@example.com".into(), "a@b.c\r\nBcc: x@y.z".into()],
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec)).unwrap_err().field,
            "spec.notification_recipients[1]"
        );
        let spec = v1::JobSpec {
            source: None,
            ..push_spec()
        };
        assert_eq!(validate(Some(&spec)).unwrap_err().field, "spec.source");
        let spec = v1::JobSpec {
            required_approvals: 3,
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec)).unwrap_err().field,
            "spec.required_approvals"
        );
    }

    #[test]
    fn sources_round_trip_through_storage() {
        let source = v1::JobSource {
            kind: Some(job_source::Kind::File(v1::FileSource {
                path: "/srv/export.ldif".into(),
                format: FileFormat::Ldif as i32,
                anchor_attribute: "objectGUID".into(),
            })),
        };
        let spec = v1::JobSpec {
            source: Some(source.clone()),
            ..push_spec()
        };
        let valid = validate(Some(&spec)).unwrap();
        assert_eq!(
            source_to_proto(valid.source_kind, &valid.source_config),
            source
        );
    }
}
