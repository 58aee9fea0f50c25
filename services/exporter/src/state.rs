//! What a target must show after a change: the object's full state (or its absence), built
//! from a feed row, or, for a retry, from the directory as it is now. Writers make the target
//! match it, so writing the same state twice changes nothing.

use std::collections::BTreeMap;

use sqlx::PgPool;
use syncguard_store::StoreError;
use syncguard_store::feed::FeedChange;
use uuid::Uuid;

/// Users or groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person's account.
    User,
    /// A group of members.
    Group,
}

impl Kind {
    /// From the stored name.
    pub fn parse(text: &str) -> Self {
        if text == "group" {
            Kind::Group
        } else {
            Kind::User
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
        }
    }
}

/// The object as the target must show it.
#[derive(Debug, Clone)]
pub struct ObjectState {
    /// The job.
    pub job_id: Uuid,
    /// syncguard's id of the object.
    pub object_id: Uuid,
    /// The source anchor (the target's RDN value / SCIM externalId).
    pub anchor: String,
    /// User or group.
    pub kind: Kind,
    /// `create`, `update`, ... as the feed names the change (`retry` for a retry).
    pub change: String,
    /// Attribute names an update changed (all of them matter otherwise).
    pub changed: Vec<String>,
    /// False once the object was soft-deleted or purged: the target must not have it.
    pub present: bool,
    /// Attribute name (lowercase) to values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Sign-in allowed.
    pub enabled: bool,
    /// A group's members, by anchor.
    pub members: Vec<String>,
    /// For a removed user: the groups it was in (to take it out of them in the target).
    pub former_groups: Vec<String>,
}

impl ObjectState {
    /// Only the attributes that changed matter (an update); otherwise all of them.
    pub fn is_partial_update(&self) -> bool {
        self.change == "update" && !self.changed.is_empty()
    }

    /// The first value of an attribute.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

fn attributes_of(value: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    syncguard_domain::stored_attributes(value)
        .map(|(name, values)| (name.clone(), values))
        .collect()
}

/// The state a feed row asks for. A removed user's former groups are read from the
/// directory (the object keeps them while soft-deleted).
pub async fn from_change(pool: &PgPool, change: &FeedChange) -> Result<ObjectState, StoreError> {
    let present = !matches!(change.change.as_str(), "soft_delete" | "purge");
    let former_groups = if present {
        Vec::new()
    } else {
        former_groups(pool, change.job_id, &change.anchor).await?
    };
    Ok(ObjectState {
        job_id: change.job_id,
        object_id: change.object_id,
        anchor: change.anchor.clone(),
        kind: Kind::parse(&change.object_type),
        change: change.change.clone(),
        changed: change.changed_attributes.clone(),
        present,
        attributes: attributes_of(&change.attributes),
        enabled: change.enabled,
        members: change.member_anchors.clone(),
        former_groups,
    })
}

async fn former_groups(
    pool: &PgPool,
    job_id: Uuid,
    anchor: &str,
) -> Result<Vec<String>, StoreError> {
    let row: Option<(Vec<String>,)> = sqlx::query_as(
        "SELECT memberships_at_deletion FROM directory_objects WHERE job_id = $1 AND anchor = $2",
    )
    .bind(job_id)
    .bind(anchor)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(groups,)| groups).unwrap_or_default())
}

/// The state the directory holds now, for a retry: the object as it is (or its absence).
pub async fn current(
    pool: &PgPool,
    job_id: Uuid,
    anchor: &str,
) -> Result<Option<ObjectState>, StoreError> {
    type Row = (
        Uuid,
        String,
        serde_json::Value,
        bool,
        Option<chrono::DateTime<chrono::Utc>>,
        Vec<String>,
        Vec<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT d.object_id, d.object_type, d.attributes, d.enabled, d.deleted_at, d.memberships_at_deletion, \
                COALESCE((SELECT array_agg(m.member_anchor ORDER BY m.member_anchor COLLATE \"C\") \
                          FROM directory_memberships m WHERE m.job_id = d.job_id AND m.group_anchor = d.anchor), '{}') \
         FROM directory_objects d WHERE d.job_id = $1 AND d.anchor = $2",
    )
    .bind(job_id)
    .bind(anchor)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(object_id, object_type, attributes, enabled, deleted_at, former_groups, members)| {
            ObjectState {
                job_id,
                object_id,
                anchor: anchor.to_owned(),
                kind: Kind::parse(&object_type),
                change: "retry".into(),
                changed: Vec::new(),
                present: deleted_at.is_none(),
                attributes: attributes_of(&attributes),
                enabled,
                members,
                former_groups,
            }
        },
    ))
}

/// The groups (by anchor) that hold `anchor` as a member now: a user created or restored in
/// a target rejoins those the target already has.
pub async fn groups_holding(
    pool: &PgPool,
    job_id: Uuid,
    anchor: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT group_anchor FROM directory_memberships WHERE job_id = $1 AND member_anchor = $2",
    )
    .bind(job_id)
    .bind(anchor)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(group,)| group).collect())
}

/// The kinds of the given anchors of a job, as the directory has them (deleted ones left
/// out): what a member's DN depends on.
pub async fn live_kinds(
    pool: &PgPool,
    job_id: Uuid,
    anchors: &[String],
) -> Result<BTreeMap<String, Kind>, StoreError> {
    if anchors.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT anchor, object_type FROM directory_objects \
         WHERE job_id = $1 AND anchor = ANY($2) AND deleted_at IS NULL",
    )
    .bind(job_id)
    .bind(anchors)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(anchor, kind)| (anchor, Kind::parse(&kind)))
        .collect())
}
