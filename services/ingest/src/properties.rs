//! Property tests of the readers and the canonical form: any input is read or refused
//! without a panic, what a writer of LDIF or JSON exports produces reads back as the same
//! objects, and the content hash ignores exactly what the canonical form says it ignores.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use proptest::prelude::*;
use syncguard_proto::v1::{self, AttributeValues, ObjectType};

use crate::export_file::{LdifOptions, parse_json, parse_ldif};
use crate::source_object::canonicalize;

/// A user as an export would hold it: names prefixed with `x` so they never collide with
/// the attributes the readers interpret (objectClass, entryUUID, member, ...).
#[derive(Debug, Clone)]
struct ExportUser {
    anchor: String,
    enabled: bool,
    attributes: BTreeMap<String, Vec<String>>,
}

fn export_user() -> impl Strategy<Value = ExportUser> {
    (
        "[A-Za-z0-9][A-Za-z0-9-]{0,19}",
        any::<bool>(),
        prop::collection::btree_map(
            "x[a-z0-9]{0,8}",
            // Any printable text, spaces and non-ASCII included.
            prop::collection::vec("[^\\p{Cc}]{0,24}", 1..4),
            0..6,
        ),
    )
        .prop_map(|(anchor, enabled, attributes)| ExportUser {
            anchor,
            enabled,
            attributes,
        })
}

fn export_users() -> impl Strategy<Value = Vec<ExportUser>> {
    prop::collection::vec(export_user(), 0..8).prop_map(|users| {
        let mut seen = std::collections::HashSet::new();
        users
            .into_iter()
            .filter(|user| seen.insert(user.anchor.clone()))
            .collect()
    })
}

/// Writes users as LDIF the way exporting tools do: every value base64, long lines folded.
fn to_ldif(users: &[ExportUser]) -> String {
    let mut text = String::from("version: 1\n\n");
    for user in users {
        let mut lines = vec![
            format!("dn: uid={},ou=people,dc=example,dc=org", user.anchor),
            "objectClass: inetOrgPerson".to_owned(),
            format!("entryUUID: {}", user.anchor),
        ];
        if !user.enabled {
            lines.push("nsAccountLock: true".to_owned());
        }
        for (name, values) in &user.attributes {
            for value in values {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                lines.push(format!("{name}:: {encoded}"));
            }
        }
        for line in lines {
            // Fold at 76 columns: continuation lines begin with one space.
            let mut rest = line.as_str();
            let mut first = true;
            while !rest.is_empty() {
                let width = if first { 76 } else { 75 };
                let cut = rest
                    .char_indices()
                    .nth(width)
                    .map_or(rest.len(), |(index, _)| index);
                text.push_str(if first { "" } else { " " });
                text.push_str(&rest[..cut]);
                text.push('\n');
                rest = &rest[cut..];
                first = false;
            }
        }
        text.push('\n');
    }
    text
}

fn to_json(users: &[ExportUser]) -> String {
    let objects: Vec<serde_json::Value> = users
        .iter()
        .map(|user| {
            serde_json::json!({
                "anchor": user.anchor,
                "type": "user",
                "enabled": user.enabled,
                "attributes": user.attributes,
            })
        })
        .collect();
    serde_json::json!({ "objects": objects }).to_string()
}

/// What a reader produced, keyed by anchor, with only the users' own attributes.
fn read_back(
    objects: &[v1::SourceObject],
) -> BTreeMap<String, (bool, BTreeMap<String, Vec<String>>)> {
    objects
        .iter()
        .map(|object| {
            let attributes = object
                .attributes
                .iter()
                .filter(|(name, _)| name.starts_with('x'))
                .map(|(name, values)| (name.clone(), values.values.clone()))
                .collect();
            (object.anchor.clone(), (object.enabled, attributes))
        })
        .collect()
}

fn expected(users: &[ExportUser]) -> BTreeMap<String, (bool, BTreeMap<String, Vec<String>>)> {
    users
        .iter()
        .map(|user| (user.anchor.clone(), (user.enabled, user.attributes.clone())))
        .collect()
}

fn source_object(
    anchor: &str,
    attributes: &BTreeMap<String, Vec<String>>,
    members: &[String],
) -> v1::SourceObject {
    v1::SourceObject {
        anchor: anchor.to_owned(),
        object_type: ObjectType::Group as i32,
        distinguished_name: format!("cn={anchor},dc=example"),
        attributes: attributes
            .iter()
            .map(|(name, values)| {
                (
                    name.clone(),
                    AttributeValues {
                        values: values.clone(),
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
        enabled: true,
        member_anchors: members.to_vec(),
        deleted_in_source: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,400}") {
        let _ = parse_ldif("fuzz.ldif", &text, &LdifOptions::with_anchor(""));
        let _ = parse_json("fuzz.json", &text);
    }

    #[test]
    fn ldif_shaped_text_is_read_or_refused_without_a_panic(
        lines in prop::collection::vec(
            prop_oneof![
                Just("dn: uid=a,dc=example".to_owned()),
                Just("objectClass: inetOrgPerson".to_owned()),
                Just("objectClass: groupOfNames".to_owned()),
                Just("entryUUID: a".to_owned()),
                Just("member: uid=a,dc=example".to_owned()),
                Just(String::new()),
                Just("version: 1".to_owned()),
                "[a-zA-Z]{1,8}:{1,2} ?[A-Za-z0-9+/=\\- ]{0,12}",
                " [a-z]{0,6}",
            ],
            0..30,
        )
    ) {
        let text = lines.join("\n");
        let _ = parse_ldif("fuzz.ldif", &text, &LdifOptions::with_anchor(""));
    }

    #[test]
    fn ldif_exports_read_back_as_the_same_users(users in export_users()) {
        let read = parse_ldif("export.ldif", &to_ldif(&users), &LdifOptions::with_anchor("entryUUID"))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(read_back(&read.objects), expected(&users));
    }

    #[test]
    fn json_exports_read_back_as_the_same_users(users in export_users()) {
        let read = parse_json("export.json", &to_json(&users))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(read_back(&read.objects), expected(&users));
    }

    #[test]
    fn the_hash_ignores_value_order_and_name_case_and_nothing_else(
        attributes in prop::collection::btree_map(
            "[a-z]{1,8}",
            prop::collection::btree_set("[^\\p{Cc}]{0,12}", 1..5),
            1..6,
        ),
        members in prop::collection::btree_set("[A-Za-z0-9]{1,10}", 0..5),
        rotation in 0usize..5,
    ) {
        let attributes: BTreeMap<String, Vec<String>> = attributes
            .into_iter()
            .map(|(name, values)| (name, values.into_iter().collect()))
            .collect();
        let members: Vec<String> = members.into_iter().collect();
        let original = canonicalize(0, source_object("g-1", &attributes, &members))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;

        // The same sets, in another order, under upper-case names.
        let reordered: BTreeMap<String, Vec<String>> = attributes
            .iter()
            .map(|(name, values)| {
                let mut values = values.clone();
                let by = rotation % values.len();
                values.rotate_left(by);
                values.reverse();
                (name.to_ascii_uppercase(), values)
            })
            .collect();
        let mut shuffled_members = members.clone();
        shuffled_members.reverse();
        let same = canonicalize(0, source_object("g-1", &reordered, &shuffled_members))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(original.content_hash, same.content_hash);

        // One value more is another object.
        let mut changed = attributes.clone();
        if let Some(values) = changed.values_mut().next() {
            values.push(format!("{}-changed", values[0]));
        }
        let other = canonicalize(0, source_object("g-1", &changed, &members))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_ne!(original.content_hash, other.content_hash);

        // So is one member more.
        let mut more_members = members.clone();
        more_members.push("zz-new-member".to_owned());
        let other = canonicalize(0, source_object("g-1", &attributes, &more_members))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_ne!(original.content_hash, other.content_hash);
    }
}
