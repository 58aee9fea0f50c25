//! A job's export targets from a request: validated here (errors name the field), stored with
//! the job, read by the exporter. Hosts are checked against the deployment's allow-lists and
//! secrets must exist where the deployment keeps them.

use std::collections::{BTreeMap, HashSet};

use syncguard_bootstrap::{AllowedHosts, SecretName};
use syncguard_domain::target::{
    LdapTargetSettings, ScimTargetSettings, TargetKind, TargetSettings, default_ldap_attribute_map,
    default_scim_attribute_map,
};
use syncguard_domain::{FieldError, text};
use syncguard_proto::v1::{self, job_target};

use crate::job_spec::split_host_port;
use crate::policy::IngestPolicy;

/// Targets a job may have.
const MAX_TARGETS: usize = 8;

fn secret(field: &str, name: &str, policy: &IngestPolicy) -> Result<String, FieldError> {
    let secret = SecretName::parse(field, name)?;
    policy
        .secrets
        .resolve(&secret)
        .map_err(|error| FieldError::new(field, error.to_string()))?;
    Ok(secret.as_str().to_owned())
}

fn attribute_map(
    field: &str,
    given: &std::collections::HashMap<String, String>,
    default: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldError> {
    if given.is_empty() {
        return Ok(default);
    }
    let mut map = BTreeMap::new();
    for (from, to) in given {
        let key = format!("{field}[{from:?}]");
        let from = text::single_line(&key, from.trim(), 128)?;
        let to = text::single_line(&key, to.trim(), 128)?;
        let valid = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ';'))
        };
        if !valid(from) || !valid(to) {
            return Err(FieldError::new(
                key,
                "attribute names are letters, digits, '-', '.', '_' and ';'",
            ));
        }
        map.insert(from.to_ascii_lowercase(), to.to_owned());
    }
    Ok(map)
}

fn dn(field: &str, value: &str) -> Result<String, FieldError> {
    let value = text::single_line(field, value.trim(), 1024)?;
    if value.is_empty() || !value.contains('=') {
        return Err(FieldError::new(
            field,
            "a DN like ou=people,dc=example,dc=org is required",
        ));
    }
    Ok(value.to_owned())
}

/// A URL of one of `schemes` (prefix, default port) whose host `hosts` allows.
fn allowed_url(
    field: &str,
    value: &str,
    schemes: &[(&str, u16)],
    wrong_scheme: &str,
    hosts: &AllowedHosts,
) -> Result<String, FieldError> {
    let url = text::single_line(field, value.trim(), 1024)?;
    let (default_port, rest) = schemes
        .iter()
        .find_map(|(scheme, port)| url.strip_prefix(scheme).map(|rest| (*port, rest)))
        .ok_or_else(|| FieldError::new(field, wrong_scheme))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_host_port(authority, default_port).ok_or_else(|| {
        FieldError::new(field, "the URL needs a host (and at most a numeric port)")
    })?;
    hosts
        .check(&host, port)
        .map_err(|message| FieldError::new(field, message))?;
    Ok(url.to_owned())
}

fn ldap(
    field: &str,
    ldap: &v1::LdapTarget,
    policy: &IngestPolicy,
) -> Result<LdapTargetSettings, FieldError> {
    let url_field = format!("{field}.url");
    let url = allowed_url(
        &url_field,
        &ldap.url,
        &[("ldaps://", 636), ("ldap://", 389)],
        "expected an ldap:// or ldaps:// URL",
        &policy.ldap_hosts,
    )?;
    let rdn = |name: &str, value: &str, default: &str| -> Result<String, FieldError> {
        let value = text::single_line(name, value.trim(), 64)?;
        if value.is_empty() {
            return Ok(default.to_owned());
        }
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(FieldError::new(name, "an attribute name like uid or cn"));
        }
        Ok(value.to_owned())
    };
    let disabled_attribute = text::single_line(
        &format!("{field}.disabled_attribute"),
        ldap.disabled_attribute.trim(),
        128,
    )?;
    let disabled_value = text::single_line(
        &format!("{field}.disabled_value"),
        ldap.disabled_value.trim(),
        256,
    )?;
    if disabled_attribute.is_empty() != disabled_value.is_empty() {
        return Err(FieldError::new(
            format!("{field}.disabled_value"),
            "a disabled attribute needs its value (or leave both empty)",
        ));
    }
    Ok(LdapTargetSettings {
        url: url.to_owned(),
        starttls: ldap.starttls,
        bind_dn: dn(&format!("{field}.bind_dn"), &ldap.bind_dn)?,
        password_secret: secret(
            &format!("{field}.password_secret"),
            &ldap.password_secret,
            policy,
        )?,
        users_base_dn: dn(&format!("{field}.users_base_dn"), &ldap.users_base_dn)?,
        groups_base_dn: dn(&format!("{field}.groups_base_dn"), &ldap.groups_base_dn)?,
        user_rdn_attribute: rdn(
            &format!("{field}.user_rdn_attribute"),
            &ldap.user_rdn_attribute,
            "uid",
        )?,
        group_rdn_attribute: rdn(
            &format!("{field}.group_rdn_attribute"),
            &ldap.group_rdn_attribute,
            "cn",
        )?,
        attribute_map: attribute_map(
            &format!("{field}.attribute_map"),
            &ldap.attribute_map,
            default_ldap_attribute_map(),
        )?,
        disabled_attribute: disabled_attribute.to_owned(),
        disabled_value: disabled_value.to_owned(),
        active_directory: ldap.active_directory,
    })
}

fn scim(
    field: &str,
    scim: &v1::ScimTarget,
    policy: &IngestPolicy,
) -> Result<ScimTargetSettings, FieldError> {
    let url = allowed_url(
        &format!("{field}.base_url"),
        &scim.base_url,
        &[("https://", 443), ("http://", 80)],
        "expected an https:// or http:// URL",
        &policy.scim_hosts,
    )?;
    Ok(ScimTargetSettings {
        base_url: url.trim_end_matches('/').to_owned(),
        token_secret: secret(&format!("{field}.token_secret"), &scim.token_secret, policy)?,
        attribute_map: attribute_map(
            &format!("{field}.attribute_map"),
            &scim.attribute_map,
            default_scim_attribute_map(),
        )?,
    })
}

/// Validates the targets of a job specification.
pub fn validate(
    targets: &[v1::JobTarget],
    policy: &IngestPolicy,
) -> Result<Vec<TargetSettings>, FieldError> {
    if targets.len() > MAX_TARGETS {
        return Err(FieldError::new(
            "spec.targets",
            format!("at most {MAX_TARGETS} targets"),
        ));
    }
    let mut names = HashSet::new();
    targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let field = format!("spec.targets[{index}]");
            let name = target.name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    "a name of 1 to 64 of a-z, 0-9 and '-'",
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("{name:?} names two targets"),
                ));
            }
            let kind = match &target.kind {
                Some(job_target::Kind::Ldap(settings)) => {
                    TargetKind::Ldap(ldap(&format!("{field}.ldap"), settings, policy)?)
                }
                Some(job_target::Kind::Scim(settings)) => {
                    TargetKind::Scim(scim(&format!("{field}.scim"), settings, policy)?)
                }
                None => {
                    return Err(FieldError::new(field, "a target is ldap or scim"));
                }
            };
            Ok(TargetSettings {
                name: name.to_owned(),
                kind,
            })
        })
        .collect()
}

/// The API view of stored targets.
pub fn to_proto(targets: &[TargetSettings]) -> Vec<v1::JobTarget> {
    targets
        .iter()
        .map(|target| v1::JobTarget {
            name: target.name.clone(),
            kind: Some(match &target.kind {
                TargetKind::Ldap(ldap) => job_target::Kind::Ldap(v1::LdapTarget {
                    url: ldap.url.clone(),
                    starttls: ldap.starttls,
                    bind_dn: ldap.bind_dn.clone(),
                    password_secret: ldap.password_secret.clone(),
                    users_base_dn: ldap.users_base_dn.clone(),
                    groups_base_dn: ldap.groups_base_dn.clone(),
                    user_rdn_attribute: ldap.user_rdn_attribute.clone(),
                    group_rdn_attribute: ldap.group_rdn_attribute.clone(),
                    attribute_map: ldap.attribute_map.clone().into_iter().collect(),
                    disabled_attribute: ldap.disabled_attribute.clone(),
                    disabled_value: ldap.disabled_value.clone(),
                    active_directory: ldap.active_directory,
                }),
                TargetKind::Scim(scim) => job_target::Kind::Scim(v1::ScimTarget {
                    base_url: scim.base_url.clone(),
                    token_secret: scim.token_secret.clone(),
                    attribute_map: scim.attribute_map.clone().into_iter().collect(),
                }),
            }),
        })
        .collect()
}
