//! A job's settings: validated from requests (errors name the field) and stored as columns
//! plus two JSON documents (source settings and scope rules).

use syncguard_bootstrap::SecretName;
use syncguard_domain::{AttributeMatch, FieldError, ScopeRules, SourceAnchor, parse_email, text};
use syncguard_proto::v1::{self, DeprovisionMode, FileFormat, LdapScope, job_source};

use crate::policy::IngestPolicy;
use crate::source_settings::{FileSettings, LdapSettings, SourceSettings};

const DEFAULT_INTERVAL_SECS: i64 = 30 * 60;
const DEFAULT_RETENTION_DAYS: u32 = 30;
const DEFAULT_HOLD_LIMIT_SECS: i64 = 7 * 24 * 3600;
const MAX_RECIPIENTS: usize = 50;

/// A validated job specification, ready to store.
#[derive(Debug, Clone)]
pub struct ValidJobSpec {
    /// Shown everywhere the job is.
    pub name: String,
    /// Where the job's data comes from (a secret only by name).
    pub source: SourceSettings,
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
    /// Where the exporter writes the job's changes.
    pub targets: Vec<syncguard_domain::target::TargetSettings>,
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

fn validate_source(
    source: Option<&v1::JobSource>,
    policy: &IngestPolicy,
) -> Result<SourceSettings, FieldError> {
    let kind = source
        .and_then(|source| source.kind.as_ref())
        .ok_or_else(|| {
            FieldError::new("spec.source", "a source is required: push, file or ldap")
        })?;
    match kind {
        job_source::Kind::Push(_) => Ok(SourceSettings::Push),
        job_source::Kind::File(file) => {
            text::single_line("spec.source.file.path", &file.path, 1024)?;
            let path = policy.check_import_path("spec.source.file.path", &file.path)?;
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
            Ok(SourceSettings::File(FileSettings {
                path,
                format: format.into(),
                anchor_attribute,
            }))
        }
        job_source::Kind::Ldap(ldap) => {
            validate_ldap(ldap, policy).map(|ldap| SourceSettings::Ldap(Box::new(ldap)))
        }
    }
}

fn validate_ldap(ldap: &v1::LdapSource, policy: &IngestPolicy) -> Result<LdapSettings, FieldError> {
    for (field, value) in [
        ("spec.source.ldap.url", &ldap.url),
        ("spec.source.ldap.bind_dn", &ldap.bind_dn),
        ("spec.source.ldap.base_dn", &ldap.base_dn),
        ("spec.source.ldap.filter", &ldap.filter),
        (
            "spec.source.ldap.disabled_attribute",
            &ldap.disabled_attribute,
        ),
        ("spec.source.ldap.disabled_value", &ldap.disabled_value),
    ] {
        text::single_line(field, value, 4096)?;
    }
    for (index, attribute) in ldap.attributes.iter().enumerate() {
        text::single_line(
            &format!("spec.source.ldap.attributes[{index}]"),
            attribute,
            256,
        )?;
    }
    let url = ldap.url.trim();
    let (default_port, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
        (636, rest)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        (389, rest)
    } else {
        return Err(FieldError::new(
            "spec.source.ldap.url",
            "expected an ldap:// or ldaps:// URL",
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_host_port(authority, default_port).ok_or_else(|| {
        FieldError::new(
            "spec.source.ldap.url",
            "the URL needs a host (and at most a numeric port)",
        )
    })?;
    policy
        .ldap_hosts
        .check(&host, port)
        .map_err(|message| FieldError::new("spec.source.ldap.url", message))?;
    for (field, value) in [
        ("spec.source.ldap.password_file", &ldap.password_file),
        ("spec.source.ldap.password_env", &ldap.password_env),
    ] {
        if !value.is_empty() {
            return Err(FieldError::new(
                field,
                "no longer accepted: store the bind password as a secret (a file in SYNCGUARD_SECRETS_DIR or SYNCGUARD_SECRET_<NAME>) and name it in password_secret",
            ));
        }
    }
    if !ldap.password_secret.is_empty() {
        let name = SecretName::parse("spec.source.ldap.password_secret", &ldap.password_secret)?;
        policy.secrets.resolve(&name).map_err(|error| {
            FieldError::new("spec.source.ldap.password_secret", error.to_string())
        })?;
    }
    if ldap.base_dn.trim().is_empty() {
        return Err(FieldError::new(
            "spec.source.ldap.base_dn",
            "a base DN is required",
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
        Ok(LdapScope::Subtree | LdapScope::Unspecified) => "sub",
        Err(_) => {
            return Err(FieldError::new(
                "spec.source.ldap.scope",
                format!("{} is not a search scope", ldap.scope),
            ));
        }
    };
    let anchor_attribute =
        match anchor_attribute("spec.source.ldap.anchor_attribute", &ldap.anchor_attribute)? {
            name if name.is_empty() => "entryUUID".to_owned(),
            name => name,
        };
    Ok(LdapSettings {
        url: url.to_owned(),
        starttls: ldap.starttls,
        bind_dn: ldap.bind_dn.clone(),
        password_secret: ldap.password_secret.clone(),
        password_file: String::new(),
        password_env: String::new(),
        base_dn: ldap.base_dn.clone(),
        filter: ldap.filter.clone(),
        scope: scope.into(),
        attributes: ldap.attributes.clone(),
        page_size: if ldap.page_size == 0 {
            500
        } else {
            ldap.page_size
        },
        anchor_attribute,
        disabled_attribute: ldap.disabled_attribute.clone(),
        disabled_value: ldap.disabled_value.clone(),
    })
}

/// `host[:port]` or `[v6][:port]`, with the scheme's default port.
pub fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(port) => port.parse().ok()?,
    };
    Some((host.to_owned(), port))
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
        text::single_line(&format!("{field}.attribute"), &matcher.attribute, 256)?;
        for (value_index, value) in matcher.values.iter().enumerate() {
            text::single_line(&format!("{field}.values[{value_index}]"), value, 4096)?;
        }
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
        text::single_line(&format!("spec.scope.base_dns[{index}]"), base, 4096)?;
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

/// Validates a job specification from a request against the deployment's policy.
pub fn validate(
    spec: Option<&v1::JobSpec>,
    policy: &IngestPolicy,
) -> Result<ValidJobSpec, FieldError> {
    let spec = spec.ok_or_else(|| FieldError::new("spec", "the job specification is required"))?;
    let name = text::single_line("spec.name", spec.name.trim(), 200)?;
    if name.is_empty() {
        return Err(FieldError::new(
            "spec.name",
            "a name of 1 to 200 characters is required",
        ));
    }
    let source = validate_source(spec.source.as_ref(), policy)?;
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
        source,
        scope_rules,
        schedule_interval_secs,
        deprovision_mode,
        recipients,
        retention_days: retention_days as i32,
        hold_limit_secs,
        required_approvals,
        allow_empty_source: spec.allow_empty_source,
        targets: crate::targets::validate(&spec.targets, policy)?,
    })
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
        let valid = validate(Some(&push_spec()), &IngestPolicy::permissive_for_tests()).unwrap();
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
            validate(Some(&spec), &IngestPolicy::permissive_for_tests())
                .unwrap_err()
                .field,
            "spec.retention_days"
        );
        let spec = v1::JobSpec {
            notification_recipients: vec!["ops@example.com".into(), "a@b.c\r\nBcc: x@y.z".into()],
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec), &IngestPolicy::permissive_for_tests())
                .unwrap_err()
                .field,
            "spec.notification_recipients[1]"
        );
        let spec = v1::JobSpec {
            source: None,
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec), &IngestPolicy::permissive_for_tests())
                .unwrap_err()
                .field,
            "spec.source"
        );
        let spec = v1::JobSpec {
            required_approvals: 3,
            ..push_spec()
        };
        assert_eq!(
            validate(Some(&spec), &IngestPolicy::permissive_for_tests())
                .unwrap_err()
                .field,
            "spec.required_approvals"
        );
    }

    #[test]
    fn sources_round_trip_through_storage() {
        let dir = std::env::temp_dir().join(format!("syncguard-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = IngestPolicy::new(
            syncguard_bootstrap::SecretStore::default(),
            Some(dir.clone()),
            syncguard_bootstrap::AllowedHosts::default(),
            std::time::Duration::from_secs(30),
            4,
        )
        .unwrap();
        let source = v1::JobSource {
            kind: Some(job_source::Kind::File(v1::FileSource {
                path: "hr/export.ldif".into(),
                format: FileFormat::Ldif as i32,
                anchor_attribute: "objectGUID".into(),
            })),
        };
        let spec = v1::JobSpec {
            source: Some(source.clone()),
            ..push_spec()
        };
        let valid = validate(Some(&spec), &policy).unwrap();
        let stored = valid.source.to_stored();
        assert_eq!(
            SourceSettings::from_stored(valid.source.kind(), &stored)
                .unwrap()
                .to_proto(),
            source
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_sources_stay_inside_the_import_directory() {
        let dir = std::env::temp_dir().join(format!("syncguard-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = IngestPolicy::new(
            syncguard_bootstrap::SecretStore::default(),
            Some(dir.clone()),
            syncguard_bootstrap::AllowedHosts::default(),
            std::time::Duration::from_secs(30),
            4,
        )
        .unwrap();
        for bad in ["/etc/passwd", "../../etc/shadow", "a/../../b", ""] {
            assert!(
                policy
                    .check_import_path("spec.source.file.path", bad)
                    .is_err(),
                "{bad:?}"
            );
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.join("escape.ldif")).unwrap();
        let refused = policy.resolve_import("escape.ldif").unwrap_err();
        assert!(
            refused.contains("outside the import directory"),
            "{refused}"
        );
        assert!(!refused.contains("root:"), "{refused}");
        std::fs::create_dir(dir.join("folder")).unwrap();
        assert!(
            policy
                .resolve_import("folder")
                .unwrap_err()
                .contains("not a regular file")
        );
        let no_dir = IngestPolicy::permissive_for_tests();
        assert!(
            no_dir
                .check_import_path("f", "x.ldif")
                .unwrap_err()
                .message
                .contains("SYNCGUARD_IMPORT_DIR")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ldap_jobs_name_a_secret_and_an_allowed_host() {
        let policy = IngestPolicy::new(
            syncguard_bootstrap::SecretStore::new(
                None,
                [("SYNCGUARD_SECRET_BIND".to_owned(), "pw".to_owned())],
            ),
            None,
            syncguard_bootstrap::AllowedHosts::parse("L", Some("ldap.corp.example:636")).unwrap(),
            std::time::Duration::from_secs(30),
            4,
        )
        .unwrap();
        let ldap = |url: &str, change: fn(&mut v1::LdapSource)| {
            let mut source = v1::LdapSource {
                url: url.into(),
                base_dn: "dc=corp".into(),
                password_secret: "bind".into(),
                ..Default::default()
            };
            change(&mut source);
            v1::JobSpec {
                source: Some(v1::JobSource {
                    kind: Some(job_source::Kind::Ldap(source)),
                }),
                ..push_spec()
            }
        };
        assert!(validate(Some(&ldap("ldaps://ldap.corp.example", |_| {})), &policy).is_ok());
        let field = |spec: v1::JobSpec| validate(Some(&spec), &policy).unwrap_err().field;
        assert_eq!(
            field(ldap("ldap://evil.example:389", |_| {})),
            "spec.source.ldap.url"
        );
        assert_eq!(
            field(ldap("ldaps://ldap.corp.example", |s| s.password_env =
                "SYNCGUARD_SERVICE_TOKEN".into())),
            "spec.source.ldap.password_env"
        );
        assert_eq!(
            field(ldap("ldaps://ldap.corp.example", |s| s.password_file =
                "/proc/self/environ".into())),
            "spec.source.ldap.password_file"
        );
        assert_eq!(
            field(ldap("ldaps://ldap.corp.example", |s| s.password_secret =
                "../tokens".into())),
            "spec.source.ldap.password_secret"
        );
        let missing = validate(
            Some(&ldap("ldaps://ldap.corp.example", |s| {
                s.password_secret = "database-url".into()
            })),
            &policy,
        )
        .unwrap_err();
        assert_eq!(missing.field, "spec.source.ldap.password_secret");
        assert!(
            missing.message.contains("SYNCGUARD_SECRET_DATABASE_URL"),
            "{missing}"
        );
    }
}
