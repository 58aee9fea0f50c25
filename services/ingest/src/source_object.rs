//! One source object from a push or a file: validated (errors name the field), put in
//! canonical form, and hashed, so the stager's diff is a comparison of two hashes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use syncguard_domain::{FieldError, SourceAnchor, excerpt, shortened};
use syncguard_proto::v1::{self, ObjectType};

const MAX_ATTRIBUTE_NAME: usize = 128;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_DN_BYTES: usize = 2048;
const MAX_MEMBERS: usize = 1_000_000;
/// Attributes an object may carry; directory objects have dozens, not thousands.
const MAX_ATTRIBUTES: usize = 1000;
/// Values one attribute may carry.
const MAX_VALUES: usize = 10_000;

/// A validated object in canonical form: attribute names lowercased (LDAP names are
/// case-insensitive), values and members sorted (they are sets), hash over all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalObject {
    /// The source anchor.
    pub anchor: String,
    /// `user` or `group`.
    pub object_type: &'static str,
    /// Distinguished name or container path (may be empty).
    pub distinguished_name: String,
    /// Attribute name to sorted values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// False when the source blocks sign-in.
    pub enabled: bool,
    /// Sorted, de-duplicated member anchors (groups only).
    pub member_anchors: Vec<String>,
    /// Soft-deleted in the source's recycle bin.
    pub deleted_in_source: bool,
    /// SHA-256 over everything above.
    pub content_hash: [u8; 32],
}

/// Validates object number `index` of a snapshot and puts it in canonical form, taking it
/// by value so its strings move instead of being copied. Errors name the field as
/// `objects[<index>].<field> (anchor <anchor>)`.
pub fn canonicalize(index: u64, object: v1::SourceObject) -> Result<CanonicalObject, FieldError> {
    let anchor = match SourceAnchor::parse("anchor", &object.anchor) {
        Ok(_) => object.anchor,
        Err(error) => {
            return Err(FieldError::new(
                format!("objects[{index}].anchor"),
                error.message,
            ));
        }
    };
    let at = |name: &str| {
        format!(
            "objects[{index}].{name} (anchor {})",
            shortened(&anchor, 40)
        )
    };
    if object.attributes.len() > MAX_ATTRIBUTES {
        return Err(FieldError::new(
            at("attributes"),
            format!(
                "{} attributes; an object has at most {MAX_ATTRIBUTES}",
                object.attributes.len()
            ),
        ));
    }
    let object_type = match ObjectType::try_from(object.object_type) {
        Ok(ObjectType::User) => "user",
        Ok(ObjectType::Group) => "group",
        _ => {
            return Err(FieldError::new(
                at("object_type"),
                "must be OBJECT_TYPE_USER or OBJECT_TYPE_GROUP",
            ));
        }
    };
    if object.distinguished_name.len() > MAX_DN_BYTES || object.distinguished_name.contains('\0') {
        return Err(FieldError::new(
            at("distinguished_name"),
            format!("at most {MAX_DN_BYTES} bytes, no NUL characters"),
        ));
    }
    let mut attributes = BTreeMap::new();
    for (name, values) in object.attributes {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_ATTRIBUTE_NAME
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b';');
        if !valid_name {
            return Err(FieldError::new(
                at("attributes"),
                format!(
                    "{} is not an attribute name (letters, digits, '-', '_', ';'; at most {MAX_ATTRIBUTE_NAME})",
                    excerpt(&name)
                ),
            ));
        }
        let key = if name.bytes().any(|c| c.is_ascii_uppercase()) {
            name.to_ascii_lowercase()
        } else {
            name
        };
        let mut sorted = values.values;
        if sorted.len() > MAX_VALUES
            || sorted
                .iter()
                .any(|value| value.len() > MAX_VALUE_BYTES || value.contains('\0'))
        {
            return Err(FieldError::new(
                at(&format!("attributes[{key}]")),
                format!(
                    "at most {MAX_VALUES} values of at most {MAX_VALUE_BYTES} bytes, with no NUL characters"
                ),
            ));
        }
        sorted.sort_unstable();
        sorted.dedup();
        if attributes.contains_key(&key) {
            return Err(FieldError::new(
                at(&format!("attributes[{key}]")),
                "the attribute is given twice (names are case-insensitive)",
            ));
        }
        attributes.insert(key, sorted);
    }
    if object_type == "user" && !object.member_anchors.is_empty() {
        return Err(FieldError::new(
            at("member_anchors"),
            "only groups have members",
        ));
    }
    if object.member_anchors.len() > MAX_MEMBERS {
        return Err(FieldError::new(
            at("member_anchors"),
            format!("at most {MAX_MEMBERS} members"),
        ));
    }
    for (position, member) in object.member_anchors.iter().enumerate() {
        if let Err(error) = SourceAnchor::parse("member", member) {
            return Err(FieldError::new(
                at(&format!("member_anchors[{position}]")),
                error.message,
            ));
        }
    }
    let mut member_anchors = object.member_anchors;
    member_anchors.sort_unstable();
    member_anchors.dedup();

    let mut canonical = CanonicalObject {
        anchor,
        object_type,
        distinguished_name: object.distinguished_name,
        attributes,
        enabled: object.enabled,
        member_anchors,
        deleted_in_source: object.deleted_in_source,
        content_hash: [0; 32],
    };
    canonical.content_hash = hash(&canonical);
    Ok(canonical)
}

fn hash(object: &CanonicalObject) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(object.object_type.as_bytes());
    field(object.distinguished_name.as_bytes());
    field(&[u8::from(object.enabled), u8::from(object.deleted_in_source)]);
    for (name, values) in &object.attributes {
        field(name.as_bytes());
        field(&(values.len() as u64).to_le_bytes());
        for value in values {
            field(value.as_bytes());
        }
    }
    field(b"members");
    for member in &object.member_anchors {
        field(member.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(anchor: &str) -> v1::SourceObject {
        let mut attributes = std::collections::HashMap::new();
        attributes.insert(
            "Mail".to_owned(),
            v1::AttributeValues {
                values: vec!["b@x.org".into(), "a@x.org".into()],
            },
        );
        v1::SourceObject {
            anchor: anchor.into(),
            object_type: ObjectType::User as i32,
            attributes,
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn canonical_form_ignores_value_order_and_name_case() {
        let first = canonicalize(0, user("E-1")).unwrap();
        let mut reordered = user("E-1");
        reordered.attributes.clear();
        reordered.attributes.insert(
            "mail".into(),
            v1::AttributeValues {
                values: vec!["a@x.org".into(), "b@x.org".into()],
            },
        );
        assert_eq!(
            first.content_hash,
            canonicalize(0, reordered).unwrap().content_hash
        );
        let mut disabled = user("E-1");
        disabled.enabled = false;
        assert_ne!(
            first.content_hash,
            canonicalize(0, disabled).unwrap().content_hash
        );
    }

    #[test]
    fn invalid_objects_name_the_field_and_anchor() {
        let mut typeless = user("E-7");
        typeless.object_type = 0;
        let error = canonicalize(7, typeless).unwrap_err();
        assert_eq!(error.field, "objects[7].object_type (anchor E-7)");
        let mut member = user("E-8");
        member.member_anchors = vec!["E-1".into()];
        assert!(
            canonicalize(8, member)
                .unwrap_err()
                .field
                .contains("member_anchors")
        );
        let error = canonicalize(9, user("")).unwrap_err();
        assert_eq!(error.field, "objects[9].anchor");
    }
}
