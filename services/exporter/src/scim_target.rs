//! Writing to a SCIM 2.0 service provider (RFC 7644): users and groups by `externalId` (the
//! anchor), created with POST, changed with PATCH (only what changed), removed with DELETE.
//! An object the provider already has (found by `externalId`) is patched instead of created
//! twice; removing what is gone is success. Group members are SCIM ids: a group names the
//! members the provider has, and a user that (re)appears joins the groups that hold it.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use syncguard_domain::target::ScimTargetSettings;

use crate::state::{self, Kind, ObjectState};
use crate::write::WriteError;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one SCIM target.
pub struct ScimWriter {
    settings: ScimTargetSettings,
    client: reqwest::Client,
    token: String,
    /// SCIM ids written by this writer and not recorded yet (anchor to id; `None`: deleted),
    /// so that a group written after its members in the same page names them.
    written: HashMap<String, Option<String>>,
}

fn endpoint(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "Users",
        Kind::Group => "Groups",
    }
}

/// A failure of the request itself (connection, timeout) is the target's.
fn unreachable(what: &str, error: reqwest::Error) -> WriteError {
    WriteError::Target(format!("{what}: {error}"))
}

/// A status that is not success: the provider's own words, as the object's failure or, for
/// server errors, authentication and throttling, as the target's.
async fn refused(what: &str, response: reqwest::Response) -> WriteError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|value| {
            value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    let message = format!("{what}: {status} {detail}");
    if status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        )
    {
        WriteError::Target(message)
    } else {
        WriteError::Object(message)
    }
}

/// The SCIM value of a path: a list of `{value, primary}` for the multi-valued ones
/// (emails, phone numbers), else the first value.
fn path_value(path: &str, values: &[String]) -> Value {
    if matches!(path, "emails" | "phoneNumbers") {
        Value::Array(
            values
                .iter()
                .enumerate()
                .map(|(index, value)| json!({"value": value, "primary": index == 0}))
                .collect(),
        )
    } else {
        match values.first() {
            Some(value) => Value::String(value.clone()),
            None => Value::Null,
        }
    }
}

/// Sets `path` (`title`, `name.givenName`, `emails`) in a SCIM resource.
fn put_path(resource: &mut Value, path: &str, values: &[String]) {
    let value = path_value(path, values);
    match path.split_once('.') {
        Some((parent, child)) => {
            let entry = resource
                .as_object_mut()
                .map(|object| object.entry(parent.to_owned()).or_insert_with(|| json!({})));
            if let Some(Value::Object(object)) = entry {
                object.insert(child.to_owned(), value);
            }
        }
        None => {
            if let Some(object) = resource.as_object_mut() {
                object.insert(path.to_owned(), value);
            }
        }
    }
}

impl ScimWriter {
    /// A client for `settings` that sends `token`.
    pub fn connect(settings: &ScimTargetSettings, token: &str) -> Result<Self, WriteError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| WriteError::Target(format!("HTTP client: {error}")))?;
        Ok(Self {
            settings: settings.clone(),
            client,
            token: token.to_owned(),
            written: HashMap::new(),
        })
    }

    fn url(&self, kind: Kind, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("{}/{}/{id}", self.settings.base_url, endpoint(kind)),
            None => format!("{}/{}", self.settings.base_url, endpoint(kind)),
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.token)
            .header("Content-Type", "application/scim+json")
            .header("Accept", "application/scim+json")
    }

    /// The provider's id of the object with `anchor`, found by `externalId`.
    async fn find(&self, kind: Kind, anchor: &str) -> Result<Option<String>, WriteError> {
        let filter = format!(
            "externalId eq \"{}\"",
            anchor.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let url = self.url(kind, None);
        let what = format!("find {anchor} in {url}");
        let response = self
            .request(reqwest::Method::GET, &url)
            .query(&[("filter", filter.as_str())])
            .send()
            .await
            .map_err(|error| unreachable(&what, error))?;
        if !response.status().is_success() {
            return Err(refused(&what, response).await);
        }
        let listed: Value = response
            .json()
            .await
            .map_err(|error| WriteError::Object(format!("{what}: not a SCIM list: {error}")))?;
        Ok(listed["Resources"]
            .as_array()
            .and_then(|resources| resources.first())
            .and_then(|resource| resource["id"].as_str())
            .map(str::to_owned))
    }

    /// The full resource of `state` (SCIM ids of its members from `member_ids`).
    fn resource(&self, state: &ObjectState, member_ids: &[String]) -> Value {
        match state.kind {
            Kind::User => {
                let mut user = json!({
                    "schemas": [USER_SCHEMA],
                    "externalId": state.anchor,
                    "userName": state.anchor,
                    "active": state.enabled,
                });
                for (source, path) in &self.settings.attribute_map {
                    if let Some(values) = state.attributes.get(source).filter(|v| !v.is_empty()) {
                        put_path(&mut user, path, values);
                    }
                }
                user
            }
            Kind::Group => json!({
                "schemas": [GROUP_SCHEMA],
                "externalId": state.anchor,
                "displayName": state.first("displayname").or(state.first("cn")).unwrap_or(&state.anchor),
                "members": member_ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>(),
            }),
        }
    }

    /// PATCH operations for what an update changed (or, for other changes, all of it).
    fn operations(&self, state: &ObjectState, member_ids: &[String]) -> Vec<Value> {
        let partial = state.is_partial_update();
        let wanted = |source: &str| !partial || state.changed.iter().any(|c| c == source);
        let mut operations = Vec::new();
        match state.kind {
            Kind::User => {
                for (source, path) in &self.settings.attribute_map {
                    if !wanted(source) || path == "userName" {
                        continue;
                    }
                    match state.attributes.get(source).filter(|v| !v.is_empty()) {
                        Some(values) => operations.push(
                            json!({"op": "replace", "path": path, "value": path_value(path, values)}),
                        ),
                        None => operations.push(json!({"op": "remove", "path": path})),
                    }
                }
                operations.push(json!({"op": "replace", "path": "active", "value": state.enabled}));
            }
            Kind::Group => {
                if wanted("cn") || wanted("displayname") {
                    let name = state
                        .first("displayname")
                        .or(state.first("cn"))
                        .unwrap_or(&state.anchor);
                    operations.push(json!({"op": "replace", "path": "displayName", "value": name}));
                }
                if wanted("members") {
                    operations.push(json!({
                        "op": "replace",
                        "path": "members",
                        "value": member_ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>(),
                    }));
                }
            }
        }
        operations
    }

    async fn member_ids(
        &self,
        pool: &PgPool,
        state: &ObjectState,
        target: &str,
    ) -> Result<Vec<String>, WriteError> {
        if state.kind != Kind::Group {
            return Ok(Vec::new());
        }
        self.target_refs(pool, state.job_id, target, &state.members)
            .await
    }

    /// The SCIM ids (in this target) of the objects with these anchors that it has.
    async fn target_refs(
        &self,
        pool: &PgPool,
        job_id: uuid::Uuid,
        target: &str,
        anchors: &[String],
    ) -> Result<Vec<String>, WriteError> {
        if anchors.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT anchor, target_ref FROM export_objects WHERE job_id = $1 AND target = $2 AND anchor = ANY($3)",
        )
        .bind(job_id)
        .bind(target)
        .bind(anchors)
        .fetch_all(pool)
        .await
        .map_err(|error| WriteError::Internal(error.to_string()))?;
        let mut refs: HashMap<&str, Option<&str>> = rows
            .iter()
            .map(|(anchor, id)| (anchor.as_str(), Some(id.as_str())))
            .collect();
        for anchor in anchors {
            if let Some(fresh) = self.written.get(anchor) {
                refs.insert(anchor.as_str(), fresh.as_deref());
            }
        }
        let mut ids: Vec<String> = refs.into_values().flatten().map(str::to_owned).collect();
        ids.sort();
        Ok(ids)
    }

    async fn known_id(
        &self,
        pool: &PgPool,
        state: &ObjectState,
        target: &str,
    ) -> Result<Option<String>, WriteError> {
        if let Some(fresh) = self.written.get(&state.anchor) {
            return Ok(fresh.clone());
        }
        let known: Option<(String,)> = sqlx::query_as(
            "SELECT target_ref FROM export_objects WHERE job_id = $1 AND target = $2 AND anchor = $3",
        )
        .bind(state.job_id)
        .bind(target)
        .bind(&state.anchor)
        .fetch_optional(pool)
        .await
        .map_err(|error| WriteError::Internal(error.to_string()))?;
        match known {
            Some((id,)) => Ok(Some(id)),
            None => self.find(state.kind, &state.anchor).await,
        }
    }

    async fn create(
        &self,
        state: &ObjectState,
        member_ids: &[String],
    ) -> Result<String, WriteError> {
        let url = self.url(state.kind, None);
        let what = format!("create {} at {url}", state.anchor);
        let response = self
            .request(reqwest::Method::POST, &url)
            .json(&self.resource(state, member_ids))
            .send()
            .await
            .map_err(|error| unreachable(&what, error))?;
        if !response.status().is_success() {
            return Err(refused(&what, response).await);
        }
        let created: Value = response
            .json()
            .await
            .map_err(|error| WriteError::Object(format!("{what}: not a SCIM resource: {error}")))?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| WriteError::Object(format!("{what}: the answer has no id")))
    }

    /// PATCH; `false` when the provider does not have the resource.
    async fn patch(
        &self,
        kind: Kind,
        id: &str,
        operations: Vec<Value>,
    ) -> Result<bool, WriteError> {
        if operations.is_empty() {
            return Ok(true);
        }
        let url = self.url(kind, Some(id));
        let what = format!("patch {url}");
        let response = self
            .request(reqwest::Method::PATCH, &url)
            .json(&json!({"schemas": [PATCH_SCHEMA], "Operations": operations}))
            .send()
            .await
            .map_err(|error| unreachable(&what, error))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => Err(refused(&what, response).await),
        }
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<(), WriteError> {
        let url = self.url(kind, Some(id));
        let what = format!("delete {url}");
        let response = self
            .request(reqwest::Method::DELETE, &url)
            .send()
            .await
            .map_err(|error| unreachable(&what, error))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(refused(&what, response).await),
        }
    }

    /// Makes the provider show `state`; returns its SCIM id, or `None` once it is gone.
    pub async fn write(
        &mut self,
        pool: &PgPool,
        state: &ObjectState,
        target: &str,
    ) -> Result<Option<String>, WriteError> {
        let known = self.known_id(pool, state, target).await?;
        if !state.present {
            if let Some(id) = &known {
                // Out of its groups first (a provider may keep a dangling member).
                let groups = self
                    .target_refs(pool, state.job_id, target, &state.former_groups)
                    .await?;
                for group in groups {
                    let remove =
                        json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")});
                    self.patch(Kind::Group, &group, vec![remove]).await?;
                }
                self.delete(state.kind, id).await?;
            }
            self.written.insert(state.anchor.clone(), None);
            return Ok(None);
        }
        let member_ids = self.member_ids(pool, state, target).await?;
        let id = match known {
            Some(id)
                if self
                    .patch(state.kind, &id, self.operations(state, &member_ids))
                    .await? =>
            {
                id
            }
            _ => self.create(state, &member_ids).await?,
        };
        self.written.insert(state.anchor.clone(), Some(id.clone()));
        if matches!(state.change.as_str(), "create" | "restore" | "retry") {
            // Join the groups that hold it and that the provider has.
            let holding = state::groups_holding(pool, state.job_id, &state.anchor)
                .await
                .map_err(|error| WriteError::Internal(error.to_string()))?;
            for group in self
                .target_refs(pool, state.job_id, target, &holding)
                .await?
            {
                let add = json!({"op": "add", "path": "members", "value": [{"value": id}]});
                self.patch(Kind::Group, &group, vec![add]).await?;
            }
        }
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_build_scim_attributes() {
        let mut user = json!({});
        put_path(&mut user, "name.givenName", &["Ada".into()]);
        put_path(&mut user, "emails", &["a@x.org".into(), "b@x.org".into()]);
        put_path(&mut user, "title", &["Engineer".into()]);
        assert_eq!(user["name"]["givenName"], "Ada");
        assert_eq!(user["emails"][0]["value"], "a@x.org");
        assert_eq!(user["emails"][0]["primary"], true);
        assert_eq!(user["emails"][1]["primary"], false);
        assert_eq!(user["title"], "Engineer");
    }
}
