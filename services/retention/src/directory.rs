//! Reads of the target directory for other backends: one object, or pages of objects, with
//! an optional attribute projection.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::{FieldError, JobId, SourceAnchor};
use syncguard_proto::names;
use syncguard_proto::v1::{self, ObjectType, object_ref};
use uuid::Uuid;

use crate::error::RetentionError;

/// A validated page of objects: its size and the object id it starts after.
fn object_page(page: Option<&v1::PageRequest>) -> Result<(u32, Option<Uuid>), FieldError> {
    let page = syncguard_bootstrap::page(page)?;
    let after = page.token_as::<Uuid>()?;
    Ok((page.size as u32, after))
}

#[derive(sqlx::FromRow)]
struct ObjectRow {
    object_id: Uuid,
    job_id: Uuid,
    anchor: String,
    object_type: String,
    distinguished_name: String,
    attributes: serde_json::Value,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    purge_after: Option<DateTime<Utc>>,
    member_anchors: Vec<String>,
}

const OBJECT_SELECT: &str = "SELECT d.object_id, d.job_id, d.anchor, d.object_type, d.distinguished_name, \
    d.attributes, d.enabled, d.created_at, d.updated_at, d.deleted_at, d.purge_after, \
    COALESCE((SELECT array_agg(m.member_anchor ORDER BY m.member_anchor COLLATE \"C\") FROM directory_memberships m \
              WHERE m.job_id = d.job_id AND m.group_anchor = d.anchor), '{}') AS member_anchors \
    FROM directory_objects d";

impl ObjectRow {
    fn view(self, projection: &[String]) -> Result<v1::DirectoryObject, RetentionError> {
        let object_type: syncguard_domain::ObjectKind =
            self.object_type
                .parse()
                .map_err(|error: syncguard_domain::UnknownName| {
                    RetentionError::Store(syncguard_store::StoreError::Corrupt(error.to_string()))
                })?;
        let attributes = syncguard_domain::stored_attributes(&self.attributes)
            .filter(|(name, _)| {
                projection.is_empty() || projection.iter().any(|wanted| wanted == *name)
            })
            .map(|(name, values)| (name.clone(), v1::AttributeValues { values }))
            .collect();
        Ok(v1::DirectoryObject {
            object_id: self.object_id.to_string(),
            job_id: self.job_id.to_string(),
            anchor: self.anchor,
            object_type: names::object_type(object_type) as i32,
            distinguished_name: self.distinguished_name,
            attributes,
            enabled: self.enabled,
            member_anchors: self.member_anchors,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            deleted_at: self.deleted_at.map(timestamp),
            restorable_until: self.purge_after.map(timestamp),
        })
    }
}

fn projection(attributes: &[String]) -> Vec<String> {
    attributes
        .iter()
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

/// Resolves an object reference to (job, anchor) or an object id.
pub enum Reference {
    /// By object id.
    Id(Uuid),
    /// By job and source anchor.
    Anchor(JobId, SourceAnchor),
}

/// Parses an `ObjectRef`, naming the field at fault.
pub fn reference(object: Option<&v1::ObjectRef>) -> Result<Reference, FieldError> {
    match object.and_then(|object| object.by.as_ref()) {
        Some(object_ref::By::ObjectId(id)) => {
            Uuid::parse_str(id).map(Reference::Id).map_err(|_| {
                FieldError::new("object.object_id", format!("{id:?} is not an object id"))
            })
        }
        Some(object_ref::By::Anchor(anchor)) => Ok(Reference::Anchor(
            JobId::parse("object.anchor.job_id", &anchor.job_id)?,
            SourceAnchor::parse("object.anchor.anchor", &anchor.anchor)?,
        )),
        None => Err(FieldError::new(
            "object",
            "name the object by object_id or by job and anchor",
        )),
    }
}

/// One object of the directory, live or soft-deleted.
pub async fn get_object(
    pool: &PgPool,
    request: &v1::GetObjectRequest,
) -> Result<v1::DirectoryObject, RetentionError> {
    let row: Option<ObjectRow> = match reference(request.object.as_ref())? {
        Reference::Id(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{OBJECT_SELECT} WHERE d.object_id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
        Reference::Anchor(job_id, anchor) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{OBJECT_SELECT} WHERE d.job_id = $1 AND d.anchor = $2"
            )))
            .bind(job_id.0)
            .bind(anchor.as_str())
            .fetch_optional(pool)
            .await?
        }
    };
    let row =
        row.ok_or_else(|| RetentionError::NotFound("no such object in the directory".into()))?;
    row.view(&projection(&request.attributes))
}

/// A page of live objects in object-id order.
pub async fn list_objects(
    pool: &PgPool,
    request: &v1::ListObjectsRequest,
) -> Result<v1::ListObjectsResponse, RetentionError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        Some(JobId::parse("job_id", &request.job_id)?.0)
    };
    let object_type = match ObjectType::try_from(request.object_type) {
        Ok(ObjectType::Unspecified) => None,
        Ok(ObjectType::User) => Some("user"),
        Ok(ObjectType::Group) => Some("group"),
        Err(_) => return Err(FieldError::new("object_type", "not an object type").into()),
    };
    if let Some(job_id) = job_id
        && !syncguard_store::job_exists(pool, job_id).await?
    {
        return Err(RetentionError::NotFound(format!("job {job_id} not found")));
    }
    let (size, after) = object_page(request.page.as_ref())?;
    let rows: Vec<ObjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OBJECT_SELECT} WHERE d.deleted_at IS NULL AND ($1::uuid IS NULL OR d.job_id = $1) \
           AND ($2::text IS NULL OR d.object_type = $2) AND ($3::uuid IS NULL OR d.object_id > $3) \
         ORDER BY d.object_id LIMIT $4"
    )))
    .bind(job_id)
    .bind(object_type)
    .bind(after)
    .bind(i64::from(size) + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() > size as usize;
    let wanted = projection(&request.attributes);
    let objects: Vec<v1::DirectoryObject> = rows
        .into_iter()
        .take(size as usize)
        .map(|row| row.view(&wanted))
        .collect::<Result<_, _>>()?;
    let next_page_token = if more {
        objects
            .last()
            .map(|object| object.object_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListObjectsResponse {
        objects,
        next_page_token,
    })
}

/// Soft-deleted objects, most recently deleted first, filtered by job, type, deletion time
/// and purge time. The page token is the last row's deletion time and object id.
pub async fn list_deleted(
    pool: &PgPool,
    job_id: Option<Uuid>,
    object_type: Option<&str>,
    deleted_after: Option<DateTime<Utc>>,
    deleted_before: Option<DateTime<Utc>>,
    purge_before: Option<DateTime<Utc>>,
    page: Option<&v1::PageRequest>,
) -> Result<v1::ListObjectsResponse, RetentionError> {
    let page = syncguard_bootstrap::page(page)?;
    let size = page.size as u32;
    let before: Option<(i64, Uuid)> = match page.token.as_deref() {
        None => None,
        Some(token) => Some(
            token
                .split_once('/')
                .and_then(|(micros, id)| Some((micros.parse().ok()?, Uuid::parse_str(id).ok()?)))
                .ok_or_else(|| {
                    FieldError::new("page.page_token", "not a token this listing gave")
                })?,
        ),
    };
    let rows: Vec<ObjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OBJECT_SELECT} WHERE d.deleted_at IS NOT NULL AND ($1::uuid IS NULL OR d.job_id = $1) \
           AND ($2::text IS NULL OR d.object_type = $2) \
           AND ($3::timestamptz IS NULL OR d.deleted_at >= $3) AND ($4::timestamptz IS NULL OR d.deleted_at < $4) \
           AND ($5::timestamptz IS NULL OR d.purge_after < $5) \
           AND ($6::bigint IS NULL OR (d.deleted_at, d.object_id) < (to_timestamp($6::double precision / 1e6), $7)) \
         ORDER BY d.deleted_at DESC, d.object_id DESC LIMIT $8"
    )))
    .bind(job_id)
    .bind(object_type)
    .bind(deleted_after)
    .bind(deleted_before)
    .bind(purge_before)
    .bind(before.map(|(micros, _)| micros))
    .bind(before.map(|(_, id)| id))
    .bind(i64::from(size) + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() > size as usize;
    let last = rows[..rows.len().min(size as usize)]
        .last()
        .and_then(|row| {
            row.deleted_at
                .map(|at| (at.timestamp_micros(), row.object_id))
        });
    let objects: Vec<v1::DirectoryObject> = rows
        .into_iter()
        .take(size as usize)
        .map(|row| row.view(&[]))
        .collect::<Result<_, _>>()?;
    let next_page_token = match (more, last) {
        (true, Some((micros, id))) => format!("{micros}/{id}"),
        _ => String::new(),
    };
    Ok(v1::ListObjectsResponse {
        objects,
        next_page_token,
    })
}
