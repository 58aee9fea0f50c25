//! Writing to an LDAP directory. Each entry's DN is fixed by its anchor
//! (`<rdn attribute>=<anchor>,<base>`), which makes every operation idempotent: an add that
//! meets the entry becomes a modify, a modify of a missing entry becomes an add, and deleting
//! what is gone already is success. Group members are DNs; a user that is removed leaves its
//! groups, and a user that (re)appears rejoins the groups the directory says it is in.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod};
use sqlx::PgPool;
use syncguard_domain::target::LdapTargetSettings;

use crate::state::{self, Kind, ObjectState};
use crate::write::WriteError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// LDAP result codes the writer treats as answers, not failures.
const NO_SUCH_OBJECT: u32 = 32;
const ALREADY_EXISTS: u32 = 68;
const NO_SUCH_ATTRIBUTE: u32 = 16;
const VALUE_EXISTS: u32 = 20;
/// Codes that say the server (not the entry) cannot work now: busy, unavailable, unwilling.
const SERVER_TROUBLE: [u32; 4] = [51, 52, 53, 80];

/// A bound connection to one LDAP target.
pub struct LdapWriter {
    settings: LdapTargetSettings,
    ldap: Ldap,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for LdapWriter {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn target_down(what: &str, error: impl std::fmt::Display) -> WriteError {
    WriteError::Target(format!("{what}: {error}"))
}

/// An operation's result: success, an answer the writer expected, or an error of the right
/// kind (the entry's, or the server's).
fn checked(
    what: &str,
    result: Result<ldap3::LdapResult, LdapError>,
    fine: &[u32],
) -> Result<u32, WriteError> {
    let result = result.map_err(|error| target_down(what, error))?;
    if result.rc == 0 || fine.contains(&result.rc) {
        return Ok(result.rc);
    }
    let message = format!("{what}: {} (result {})", result.text, result.rc);
    if SERVER_TROUBLE.contains(&result.rc) {
        Err(WriteError::Target(message))
    } else {
        Err(WriteError::Object(message))
    }
}

/// An RDN value with the characters RFC 4514 reserves escaped.
fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (index == 0 && matches!(c, ' ' | '#'))
            || (index + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl LdapWriter {
    /// Connects and binds with `password`.
    pub async fn connect(
        settings: &LdapTargetSettings,
        password: &str,
    ) -> Result<Self, WriteError> {
        let connection = LdapConnSettings::new()
            .set_conn_timeout(CONNECT_TIMEOUT)
            .set_starttls(settings.starttls);
        let (connection, mut ldap) = LdapConnAsync::with_settings(connection, &settings.url)
            .await
            .map_err(|error| target_down(&format!("connection to {}", settings.url), error))?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%error, "LDAP target connection ended");
            }
        });
        let bound = ldap
            .with_timeout(OPERATION_TIMEOUT)
            .simple_bind(&settings.bind_dn, password)
            .await
            .map_err(|error| target_down(&format!("bind as {}", settings.bind_dn), error))?;
        if bound.rc != 0 {
            // A refused bind is the target's configuration, not one object's: hold the cursor.
            return Err(WriteError::Target(format!(
                "bind as {}: {} (result {})",
                settings.bind_dn, bound.text, bound.rc
            )));
        }
        Ok(Self {
            settings: settings.clone(),
            ldap,
            driver,
        })
    }

    /// The DN an object of `kind` with `anchor` has in this target.
    pub fn dn(&self, kind: Kind, anchor: &str) -> String {
        match kind {
            Kind::User => format!(
                "{}={},{}",
                self.settings.user_rdn_attribute,
                escape_rdn(anchor),
                self.settings.users_base_dn
            ),
            Kind::Group => format!(
                "{}={},{}",
                self.settings.group_rdn_attribute,
                escape_rdn(anchor),
                self.settings.groups_base_dn
            ),
        }
    }

    /// The target attributes of `state` (all of them, or only those an update changed), with
    /// the values to write (an empty set removes the attribute).
    fn attributes(
        &self,
        state: &ObjectState,
        only_changed: bool,
        member_dns: &[String],
    ) -> BTreeMap<String, HashSet<String>> {
        let mut written = BTreeMap::new();
        let wanted = |source: &str| !only_changed || state.changed.iter().any(|c| c == source);
        for (source, target) in &self.settings.attribute_map {
            if wanted(source) {
                let values: HashSet<String> = state
                    .attributes
                    .get(source)
                    .map(|values| values.iter().cloned().collect())
                    .unwrap_or_default();
                written
                    .entry(target.clone())
                    .or_insert_with(HashSet::new)
                    .extend(values);
            }
        }
        match state.kind {
            Kind::User => {
                // inetOrgPerson needs cn and sn; the RDN value must be among its attribute's.
                let cn = state.first("cn").unwrap_or(&state.anchor).to_owned();
                if !only_changed {
                    written.entry("cn".into()).or_default().insert(cn.clone());
                    let sn = state.first("sn").map(str::to_owned).unwrap_or(cn);
                    written.entry("sn".into()).or_default().insert(sn);
                    written
                        .entry(self.settings.user_rdn_attribute.clone())
                        .or_default()
                        .insert(state.anchor.clone());
                } else if written.get("cn").is_some_and(HashSet::is_empty) {
                    written.insert("cn".into(), HashSet::from([cn]));
                }
                if self.settings.active_directory {
                    let flags = if state.enabled { "512" } else { "514" };
                    written.insert(
                        "userAccountControl".into(),
                        HashSet::from([flags.to_owned()]),
                    );
                } else if !self.settings.disabled_attribute.is_empty() {
                    let values = if state.enabled {
                        HashSet::new()
                    } else {
                        HashSet::from([self.settings.disabled_value.clone()])
                    };
                    written.insert(self.settings.disabled_attribute.clone(), values);
                }
            }
            Kind::Group => {
                if !only_changed || state.changed.iter().any(|c| c == "members") {
                    let mut members: HashSet<String> = member_dns.iter().cloned().collect();
                    if members.is_empty() {
                        // groupOfNames needs a member: the group itself stands in.
                        members.insert(self.dn(Kind::Group, &state.anchor));
                    }
                    written.insert("member".into(), members);
                }
                let rdn = self.settings.group_rdn_attribute.clone();
                if let Some(values) = written.get_mut(&rdn) {
                    values.insert(state.anchor.clone());
                } else if !only_changed {
                    written.insert(rdn, HashSet::from([state.anchor.clone()]));
                }
            }
        }
        written
    }

    fn object_classes(kind: Kind) -> HashSet<String> {
        let classes: &[&str] = match kind {
            Kind::User => &["top", "person", "organizationalPerson", "inetOrgPerson"],
            Kind::Group => &["top", "groupOfNames"],
        };
        classes.iter().map(|c| (*c).to_owned()).collect()
    }

    async fn member_dns(
        &self,
        pool: &PgPool,
        state: &ObjectState,
    ) -> Result<Vec<String>, WriteError> {
        let kinds = state::live_kinds(pool, state.job_id, &state.members)
            .await
            .map_err(|error| WriteError::Internal(error.to_string()))?;
        Ok(state
            .members
            .iter()
            .filter_map(|anchor| kinds.get(anchor).map(|kind| self.dn(*kind, anchor)))
            .collect())
    }

    async fn add(
        &mut self,
        dn: &str,
        state: &ObjectState,
        member_dns: &[String],
    ) -> Result<u32, WriteError> {
        let mut attributes: Vec<(String, HashSet<String>)> = self
            .attributes(state, false, member_dns)
            .into_iter()
            .filter(|(_, values)| !values.is_empty())
            .collect();
        attributes.push(("objectClass".into(), Self::object_classes(state.kind)));
        let result = self
            .ldap
            .with_timeout(OPERATION_TIMEOUT)
            .add(dn, attributes)
            .await;
        checked(&format!("add {dn}"), result, &[ALREADY_EXISTS])
    }

    async fn modify(
        &mut self,
        dn: &str,
        state: &ObjectState,
        only_changed: bool,
        member_dns: &[String],
    ) -> Result<u32, WriteError> {
        let mods: Vec<Mod<String>> = self
            .attributes(state, only_changed, member_dns)
            .into_iter()
            .map(|(name, values)| Mod::Replace(name, values))
            .collect();
        if mods.is_empty() {
            return Ok(0);
        }
        let result = self
            .ldap
            .with_timeout(OPERATION_TIMEOUT)
            .modify(dn, mods)
            .await;
        checked(&format!("modify {dn}"), result, &[NO_SUCH_OBJECT])
    }

    /// Makes the target match `state`; returns the entry's DN, or `None` once it is gone.
    pub async fn write(
        &mut self,
        pool: &PgPool,
        state: &ObjectState,
    ) -> Result<Option<String>, WriteError> {
        let dn = self.dn(state.kind, &state.anchor);
        if !state.present {
            let result = self.ldap.with_timeout(OPERATION_TIMEOUT).delete(&dn).await;
            checked(&format!("delete {dn}"), result, &[NO_SUCH_OBJECT])?;
            for group in &state.former_groups {
                self.membership(group, &dn, false).await?;
            }
            return Ok(None);
        }
        let member_dns = if state.kind == Kind::Group {
            self.member_dns(pool, state).await?
        } else {
            Vec::new()
        };
        let fresh = matches!(state.change.as_str(), "create" | "restore" | "retry");
        let existed = if fresh {
            self.add(&dn, state, &member_dns).await? == ALREADY_EXISTS
        } else {
            true
        };
        if existed {
            let rc = self
                .modify(&dn, state, state.is_partial_update(), &member_dns)
                .await?;
            if rc == NO_SUCH_OBJECT {
                self.add(&dn, state, &member_dns).await?;
            }
        }
        if fresh {
            self.rejoin_groups(pool, state, &dn).await?;
        }
        Ok(Some(dn))
    }

    /// A created or restored object joins the groups that hold it in the directory.
    async fn rejoin_groups(
        &mut self,
        pool: &PgPool,
        state: &ObjectState,
        dn: &str,
    ) -> Result<(), WriteError> {
        let groups = state::groups_holding(pool, state.job_id, &state.anchor)
            .await
            .map_err(|error| WriteError::Internal(error.to_string()))?;
        for group in groups {
            self.membership(&group, dn, true).await?;
        }
        Ok(())
    }

    /// Adds `member_dn` to the group anchored `group` (`join`) or removes it. A group the
    /// target does not have yet gets its members when it is created; a member already in
    /// (or already out) is success.
    async fn membership(
        &mut self,
        group: &str,
        member_dn: &str,
        join: bool,
    ) -> Result<(), WriteError> {
        let group_dn = self.dn(Kind::Group, group);
        let members = HashSet::from([member_dn.to_owned()]);
        let (change, verb, fine) = if join {
            (Mod::Add("member".to_owned(), members), "join", VALUE_EXISTS)
        } else {
            (
                Mod::Delete("member".to_owned(), members),
                "leave",
                NO_SUCH_ATTRIBUTE,
            )
        };
        let result = self
            .ldap
            .with_timeout(OPERATION_TIMEOUT)
            .modify(&group_dn, vec![change])
            .await;
        checked(
            &format!("{verb} {group_dn}"),
            result,
            &[NO_SUCH_OBJECT, fine],
        )?;
        Ok(())
    }

    /// Ends the session.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_values_are_escaped() {
        assert_eq!(escape_rdn("a-1"), "a-1");
        assert_eq!(escape_rdn("Doe, John"), "Doe\\, John");
        assert_eq!(escape_rdn(" #x "), "\\ #x\\ ");
        assert_eq!(escape_rdn("#x"), "\\#x");
        assert_eq!(escape_rdn("a=b+c"), "a\\=b\\+c");
    }
}
