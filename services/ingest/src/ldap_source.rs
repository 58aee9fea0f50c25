//! An LDAP or Active Directory tree as a job's source: a bind, then one paged search streamed
//! into the snapshot writer. Users go straight to the writer; groups wait for the end so
//! their member DNs can be resolved to anchors (a member outside the read is reported, not
//! invented). Any error, a size or time limit, or a broken connection fails the read: the
//! snapshot is rolled back and never becomes a cycle.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use sha2::{Digest as _, Sha256};
use syncguard_proto::v1::{self, AttributeValues, ObjectType};

use crate::error::IngestError;
use crate::export_file::{
    GROUP_CLASSES, MEMBER_ATTRIBUTES, USER_CLASSES, canonical_binary, is_disabled, normalize_dn,
    text_value,
};
use crate::policy::IngestPolicy;
use crate::snapshot_load::SnapshotWriter;
use crate::source_settings::LdapSettings;
use syncguard_bootstrap::{Secret, SecretName};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// What a read brought in.
#[derive(Debug, Default)]
pub struct LdapRead {
    /// Users and groups written.
    pub objects: u64,
    /// Group members whose DN was not among the entries read.
    pub unresolved_members: Vec<String>,
}

fn failed(what: &str, error: impl std::fmt::Display) -> IngestError {
    IngestError::NoSourceData(format!("LDAP {what}: {error}"))
}

/// The bind password, from the secret the job names (never from a path or variable the job
/// names: jobs created before secrets by reference must be migrated).
fn password(policy: &IngestPolicy, settings: &LdapSettings) -> Result<Secret, IngestError> {
    if !settings.password_file.is_empty() || !settings.password_env.is_empty() {
        return Err(failed(
            "bind password",
            "the job names a password file or variable, which is no longer read: store the password as a secret and set password_secret (README: secrets)",
        ));
    }
    let name = SecretName::parse("password_secret", &settings.password_secret)
        .map_err(|error| failed("bind password", error.message))?;
    policy
        .secrets
        .resolve(&name)
        .map_err(|error| failed("bind password", error))
}

fn ldap_error(what: &str, error: LdapError) -> IngestError {
    match &error {
        LdapError::LdapResult { result } => match result.rc {
            49 => failed(
                what,
                format!(
                    "invalid credentials (49): check bind_dn and the password {}",
                    result.text
                ),
            ),
            87 => failed(what, format!("bad search filter (87): {}", result.text)),
            4 => failed(
                what,
                "the server's size limit was hit (4): the read is incomplete and was discarded",
            ),
            3 => failed(
                what,
                "the server's time limit was hit (3): the read is incomplete and was discarded",
            ),
            32 => failed(
                what,
                format!("the base DN does not exist (32): {}", result.matched),
            ),
            rc => failed(what, format!("result code {rc}: {}", result.text)),
        },
        LdapError::FilterParsing => failed(what, "bad search filter: it does not parse"),
        _ => failed(what, error),
    }
}

/// Reads the whole tree `settings` describes into `writer`. The host is checked against the
/// deployment's allow-list again (it may have changed since the job was created).
pub async fn read(
    policy: &IngestPolicy,
    settings: &LdapSettings,
    writer: &mut SnapshotWriter,
) -> Result<LdapRead, IngestError> {
    let url = settings.url.as_str();
    let default_port = if url.starts_with("ldaps://") {
        636
    } else {
        389
    };
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    let (host, port) = crate::job_spec::split_host_port(authority, default_port)
        .ok_or_else(|| failed("connection", "the URL has no host"))?;
    policy
        .ldap_hosts
        .check(&host, port)
        .map_err(|message| failed("connection", message))?;
    let connection_settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(settings.starttls);
    let (connection, mut ldap) = LdapConnAsync::with_settings(connection_settings, url)
        .await
        .map_err(|error| failed(&format!("connection to {url}"), error))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.drive().await {
            tracing::warn!(%error, "LDAP connection ended with an error");
        }
    });
    let outcome = read_entries(policy, settings, &mut ldap, writer).await;
    let _ = ldap.unbind().await;
    driver.abort();
    outcome
}

async fn read_entries(
    policy: &IngestPolicy,
    settings: &LdapSettings,
    ldap: &mut ldap3::Ldap,
    writer: &mut SnapshotWriter,
) -> Result<LdapRead, IngestError> {
    let bind_dn = settings.bind_dn.clone();
    if !bind_dn.is_empty() {
        let password = password(policy, settings)?;
        ldap.with_timeout(OPERATION_TIMEOUT)
            .simple_bind(&bind_dn, password.expose())
            .await
            .map_err(|error| failed(&format!("bind as {bind_dn}"), error))?
            .success()
            .map_err(|error| ldap_error(&format!("bind as {bind_dn}"), error))?;
    }
    let anchor_attribute = match settings.anchor_attribute.as_str() {
        "" => "entryUUID".to_owned(),
        name => name.to_owned(),
    };
    let scope = match settings.scope.as_str() {
        "base" => Scope::Base,
        "one" => Scope::OneLevel,
        _ => Scope::Subtree,
    };
    let filter = match settings.filter.as_str() {
        "" => "(objectClass=*)".to_owned(),
        filter => filter.to_owned(),
    };
    let mut attributes: Vec<String> = settings.attributes.clone();
    if attributes.is_empty() {
        attributes.push("*".into());
    }
    attributes.extend([
        anchor_attribute.clone(),
        "objectClass".into(),
        "member".into(),
        "uniqueMember".into(),
    ]);
    let page_size = settings.page_size.clamp(1, 10_000) as i32;
    let disabled_attribute = settings.disabled_attribute.to_ascii_lowercase();
    let disabled_value = settings.disabled_value.clone();
    let base = settings.base_dn.clone();

    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(page_size)),
    ];
    let mut stream = ldap
        .with_timeout(OPERATION_TIMEOUT)
        .streaming_search_with(adapters, &base, scope, &filter, attributes)
        .await
        .map_err(|error| ldap_error("search", error))?;

    let mut read = LdapRead::default();
    // Keyed by a 128-bit digest of the normalized DN: a million entries fit in about 100 MB.
    let mut anchors_by_dn: HashMap<[u8; 16], Box<str>> = HashMap::new();
    let mut groups: Vec<(v1::SourceObject, Vec<String>)> = Vec::new();
    loop {
        let entry = match stream.next().await {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(error) => return Err(ldap_error("search (the read broke off)", error)),
        };
        // ldap3 panics on an entry it cannot decode: a server's bad answer fails the read
        // instead of the task.
        let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SearchEntry::construct(entry)
        }))
        .map_err(|_| failed("search", "the server sent an entry that cannot be decoded"))?;
        let key = dn_key(&entry.dn);
        let Some((object, members)) = to_object(
            entry,
            &anchor_attribute,
            &disabled_attribute,
            &disabled_value,
        )?
        else {
            continue;
        };
        anchors_by_dn.insert(key, object.anchor.clone().into_boxed_str());
        if object.object_type == ObjectType::Group as i32 {
            groups.push((object, members));
        } else {
            writer.add(object).await?;
            read.objects += 1;
        }
    }
    stream
        .finish()
        .await
        .success()
        .map_err(|error| ldap_error("search", error))?;

    for (mut group, members) in groups {
        for dn in members {
            match anchors_by_dn.get(&dn_key(&dn)) {
                Some(anchor) => group.member_anchors.push(anchor.to_string()),
                None => read.unresolved_members.push(dn),
            }
        }
        writer.add(group).await?;
        read.objects += 1;
    }
    Ok(read)
}

/// The map key of a DN: SHA-256 of its normalized form, cut to 128 bits.
fn dn_key(dn: &str) -> [u8; 16] {
    let digest = Sha256::digest(normalize_dn(dn).as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

type Converted = Option<(v1::SourceObject, Vec<String>)>;

/// A directory entry as a source object (None for entries that are neither users nor groups).
fn to_object(
    entry: SearchEntry,
    anchor_attribute: &str,
    disabled_attribute: &str,
    disabled_value: &str,
) -> Result<Converted, IngestError> {
    let SearchEntry {
        dn,
        attrs,
        bin_attrs,
    } = entry;
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, values) in attrs {
        let key = if name.bytes().any(|c| c.is_ascii_uppercase()) {
            name.to_ascii_lowercase()
        } else {
            name
        };
        let values = values.into_iter().map(|value| text_value(&key, value));
        attributes.entry(key.clone()).or_default().extend(values);
    }
    for (name, values) in bin_attrs {
        let texts = values.iter().map(|bytes| canonical_binary(&name, bytes));
        attributes
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(texts);
    }
    let classes: Vec<String> = attributes
        .get("objectclass")
        .map(|values| values.iter().map(|c| c.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let object_type = if classes.iter().any(|c| GROUP_CLASSES.contains(&c.as_str())) {
        ObjectType::Group
    } else if classes.iter().any(|c| USER_CLASSES.contains(&c.as_str())) {
        ObjectType::User
    } else {
        return Ok(None);
    };
    let anchor = attributes
        .remove(&anchor_attribute.to_ascii_lowercase())
        .and_then(|values| values.into_iter().next())
        .ok_or_else(|| {
            failed(
                "entry",
                format!("{dn} has no {anchor_attribute}: it cannot be synced"),
            )
        })?;
    let mut members = Vec::new();
    for name in MEMBER_ATTRIBUTES {
        members.extend(attributes.remove(name).unwrap_or_default());
    }
    let configured_disabled = !disabled_attribute.is_empty()
        && attributes.get(disabled_attribute).is_some_and(|values| {
            values
                .iter()
                .any(|value| value.eq_ignore_ascii_case(disabled_value))
        });
    let enabled = !(is_disabled(&attributes) || configured_disabled);
    Ok(Some((
        v1::SourceObject {
            anchor,
            object_type: object_type as i32,
            distinguished_name: dn,
            attributes: attributes
                .into_iter()
                .map(|(name, values)| (name, AttributeValues { values }))
                .collect(),
            enabled,
            member_anchors: Vec::new(),
            deleted_in_source: false,
        },
        members,
    )))
}
