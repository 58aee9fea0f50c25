//! Directory export files (LDIF and JSON) read into source objects, the same messages a
//! snapshot push carries, so an import and the equivalent push land the same way.
//!
//! Errors name the file, the line or record, and the field. Entries that are neither users
//! nor groups (organizational units, containers) are skipped; group members are given as
//! DNs in LDIF and resolved to anchors, and members outside the file are reported.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::Deserialize;
use syncguard_domain::{SourceAnchor, excerpt, shortened};
use syncguard_proto::v1::{self, AttributeValues, ObjectType};

/// Why a file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct ExportFileError {
    /// The file's name as the caller gave it.
    pub file: String,
    /// `line 12` (LDIF) or `record 3` (JSON).
    pub location: String,
    /// The attribute or field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The objects of a file, and what could not be resolved.
#[derive(Debug, Default)]
pub struct ExportFile {
    /// Users and groups in file order.
    pub objects: Vec<v1::SourceObject>,
    /// Members named by a DN that is not in the file (reported, not invented).
    pub unresolved_members: Vec<String>,
}

/// How LDIF entries map to objects.
#[derive(Debug, Clone, Default)]
pub struct LdifOptions {
    /// Attribute holding the anchor: `entryUUID` (OpenLDAP) or `objectGUID` (AD).
    pub anchor_attribute: String,
}

impl LdifOptions {
    /// Options reading the anchor from `attribute`; empty detects it per entry (entryUUID,
    /// else objectGUID).
    pub fn with_anchor(attribute: &str) -> Self {
        Self {
            anchor_attribute: attribute.trim().to_owned(),
        }
    }
}

pub(crate) const GROUP_CLASSES: [&str; 4] =
    ["group", "groupofnames", "groupofuniquenames", "posixgroup"];
pub(crate) const USER_CLASSES: [&str; 5] = [
    "person",
    "inetorgperson",
    "organizationalperson",
    "user",
    "posixaccount",
];
pub(crate) const MEMBER_ATTRIBUTES: [&str; 2] = ["member", "uniquemember"];

struct LdifRecord {
    line: usize,
    values: Vec<(usize, String, String)>,
}

/// Reads an LDIF file of entries (RFC 2849 content records).
pub fn parse_ldif(
    file: &str,
    text: &str,
    options: &LdifOptions,
) -> Result<ExportFile, ExportFileError> {
    let error = |line: usize, field: &str, message: String| ExportFileError {
        file: file.to_owned(),
        location: format!("line {line}"),
        field: field.to_owned(),
        message,
    };

    // Unfold continuation lines and split into records at blank lines.
    let mut records: Vec<LdifRecord> = Vec::new();
    let mut logical: Vec<(usize, String)> = Vec::new();
    let flush = |logical: &mut Vec<(usize, String)>,
                 records: &mut Vec<LdifRecord>|
     -> Result<(), ExportFileError> {
        if logical.is_empty() {
            return Ok(());
        }
        let mut record = LdifRecord {
            line: logical[0].0,
            values: Vec::new(),
        };
        for (line, content) in logical.drain(..) {
            let Some((name, rest)) = content.split_once(':') else {
                return Err(error(
                    line,
                    "",
                    format!("expected `attribute: value`, found {}", excerpt(&content)),
                ));
            };
            let value = if let Some(encoded) = rest.strip_prefix(':') {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| error(line, name, format!("bad base64 value: {e}")))?;
                if ["dn", "member", "uniqueMember"]
                    .iter()
                    .any(|dn_valued| name.trim().eq_ignore_ascii_case(dn_valued))
                {
                    String::from_utf8(bytes).map_err(|_| {
                        error(
                            line,
                            name,
                            "a DN is text, but this base64 value is not UTF-8".into(),
                        )
                    })?
                } else {
                    decoded_value(name, bytes)
                }
            } else if rest.starts_with('<') {
                return Err(error(line, name, "URL values are not supported".into()));
            } else {
                rest.trim_start().to_owned()
            };
            record.values.push((line, name.trim().to_owned(), value));
        }
        records.push(record);
        Ok(())
    };
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(continued) = raw.strip_prefix(' ') {
            match logical.last_mut() {
                Some((_, previous)) => previous.push_str(continued),
                None => {
                    return Err(error(
                        number,
                        "",
                        "a continuation line starts no entry".into(),
                    ));
                }
            }
        } else if raw.starts_with('#') {
            continue;
        } else if raw.trim().is_empty() {
            flush(&mut logical, &mut records)?;
        } else {
            logical.push((number, raw.to_owned()));
        }
    }
    flush(&mut logical, &mut records)?;

    let mut parsed = ExportFile::default();
    let mut anchors_by_dn: HashMap<String, String> = HashMap::new();
    let mut first_line_of_anchor: HashMap<String, usize> = HashMap::new();
    let mut member_dns: Vec<Vec<String>> = Vec::new();
    for mut record in records {
        // `version: 1` may stand alone or directly above the first entry.
        if record.values[0].1.eq_ignore_ascii_case("version") {
            record.values.remove(0);
            match record.values.first() {
                Some((line, _, _)) => record.line = *line,
                None => continue,
            }
        }
        let (dn_line, first_name, dn) = &record.values[0];
        if !first_name.eq_ignore_ascii_case("dn") {
            return Err(error(
                *dn_line,
                first_name,
                "an entry must start with `dn:`".into(),
            ));
        }
        let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (line, name, value) in &record.values[1..] {
            if name.eq_ignore_ascii_case("changetype") {
                return Err(error(
                    *line,
                    name,
                    "change records are not supported; export plain entries".into(),
                ));
            }
            attributes
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value.clone());
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
            continue;
        };
        // The anchor attribute as configured, or detected per entry: OpenLDAP's entryUUID,
        // else Active Directory's objectGUID.
        let configured = [options.anchor_attribute.as_str()];
        let candidates: &[&str] = if options.anchor_attribute.is_empty() {
            &["entryUUID", "objectGUID"]
        } else {
            &configured
        };
        let found = candidates.iter().find_map(|name| {
            attributes
                .remove(&name.to_ascii_lowercase())
                .and_then(|values| values.into_iter().next())
                .map(|value| (*name, value))
        });
        let anchor_field = candidates.join(" or ");
        let (anchor_name, anchor_text) = found.ok_or_else(|| {
            error(
                record.line,
                &anchor_field,
                format!("entry {} has no anchor", excerpt(dn)),
            )
        })?;
        let anchor = SourceAnchor::parse(anchor_name, &anchor_text)
            .map_err(|e| error(record.line, &e.field, e.message))?
            .to_string();
        if let Some(first) = first_line_of_anchor.insert(anchor.clone(), record.line) {
            return Err(error(
                record.line,
                anchor_name,
                format!(
                    "anchor {} already used by the entry at line {first}",
                    excerpt(&anchor)
                ),
            ));
        }
        anchors_by_dn.insert(normalize_dn(dn), anchor.clone());
        let mut members = Vec::new();
        for name in MEMBER_ATTRIBUTES {
            members.extend(attributes.remove(name).unwrap_or_default());
        }
        member_dns.push(members);
        let enabled = !is_disabled(&attributes);
        parsed.objects.push(v1::SourceObject {
            anchor,
            object_type: object_type as i32,
            distinguished_name: dn.clone(),
            attributes: attributes
                .into_iter()
                .map(|(name, values)| (name, AttributeValues { values }))
                .collect(),
            enabled,
            member_anchors: Vec::new(),
            deleted_in_source: false,
        });
    }
    for (object, dns) in parsed.objects.iter_mut().zip(member_dns) {
        for dn in dns {
            match anchors_by_dn.get(&normalize_dn(&dn)) {
                Some(anchor) => object.member_anchors.push(anchor.clone()),
                None => parsed.unresolved_members.push(dn),
            }
        }
    }
    Ok(parsed)
}

/// AD's `userAccountControl` bit 2, or the common lock attributes of other servers.
pub(crate) fn is_disabled(attributes: &BTreeMap<String, Vec<String>>) -> bool {
    let first = |name: &str| attributes.get(name).and_then(|values| values.first());
    let uac_disabled = first("useraccountcontrol")
        .and_then(|value| value.trim().parse::<u32>().ok())
        .is_some_and(|flags| flags & 2 != 0);
    let locked = |name: &str| first(name).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    uac_disabled || locked("nsaccountlock") || locked("logindisabled")
}

/// A DN compared case- and space-insensitively.
pub(crate) fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

/// Attributes that are binary by their schema, whatever their bytes look like: a GUID's
/// sixteen bytes are valid UTF-8 often enough.
fn is_binary_attribute(name: &str) -> bool {
    ["objectGUID", "objectSid", "msExchMailboxGuid"]
        .iter()
        .any(|binary| binary.eq_ignore_ascii_case(name))
}

/// A base64-decoded (or wire) value as text: binary attributes and bytes that are not plain
/// text (not UTF-8, or with control characters) in their canonical text form.
pub(crate) fn decoded_value(name: &str, bytes: Vec<u8>) -> String {
    if is_binary_attribute(name) {
        return canonical_binary(name, &bytes);
    }
    match String::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
        {
            text
        }
        Ok(text) => canonical_binary(name, text.as_bytes()),
        Err(binary) => canonical_binary(name, binary.as_bytes()),
    }
}

/// A value the server sent as text for an attribute that is binary by schema (its bytes
/// happened to be valid UTF-8), in canonical text form; other values unchanged.
pub(crate) fn text_value(name: &str, value: String) -> String {
    if is_binary_attribute(name) {
        return canonical_binary(name, value.as_bytes());
    }
    value
}

/// Binary values: a 16-byte objectGUID becomes its canonical GUID text; anything else hex.
pub(crate) fn canonical_binary(name: &str, bytes: &[u8]) -> String {
    if name.eq_ignore_ascii_case("objectGUID") && bytes.len() == 16 {
        // AD stores the first three groups little-endian.
        let b = bytes;
        return format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            hex::encode(&b[10..16])
        );
    }
    hex::encode(bytes)
}

/// The fields a JSON record may carry.
const JSON_FIELDS: [&str; 7] = [
    "anchor",
    "type",
    "dn",
    "attributes",
    "enabled",
    "members",
    "deleted",
];

/// One JSON record, decoded field by field so an error names the field.
struct JsonObject {
    anchor: String,
    object_type: String,
    dn: String,
    attributes: BTreeMap<String, JsonValues>,
    enabled: bool,
    members: Vec<String>,
    deleted: bool,
}

impl JsonObject {
    /// Decodes `record`; an error is the field at fault and what is wrong with it.
    fn decode(record: serde_json::Value) -> Result<Self, (String, String)> {
        let serde_json::Value::Object(mut map) = record else {
            return Err((
                String::new(),
                format!(
                    "a record is an object like {{\"anchor\": \"E-1\", \"type\": \"user\"}}, not {}",
                    json_kind(&record)
                ),
            ));
        };
        if let Some(unknown) = map.keys().find(|key| !JSON_FIELDS.contains(&key.as_str())) {
            return Err((
                shortened(unknown, 40),
                format!("unknown field; a record has {}", JSON_FIELDS.join(", ")),
            ));
        }
        fn take<T: serde::de::DeserializeOwned>(
            map: &mut serde_json::Map<String, serde_json::Value>,
            name: &str,
            expected: &str,
        ) -> Result<Option<T>, (String, String)> {
            map.remove(name)
                .map(|value| {
                    let kind = json_kind(&value);
                    serde_json::from_value(value).map_err(|_| {
                        (
                            name.to_owned(),
                            format!("expected {expected}, found {kind}"),
                        )
                    })
                })
                .transpose()
        }
        let required = |value: Option<String>, name: &str| {
            value.ok_or_else(|| (name.to_owned(), "required".to_owned()))
        };
        Ok(Self {
            anchor: required(take(&mut map, "anchor", "a string")?, "anchor")?,
            object_type: required(take(&mut map, "type", "\"user\" or \"group\"")?, "type")?,
            dn: take(&mut map, "dn", "a string")?.unwrap_or_default(),
            attributes: take(
                &mut map,
                "attributes",
                "an object of strings or arrays of strings",
            )?
            .unwrap_or_default(),
            enabled: take(&mut map, "enabled", "true or false")?.unwrap_or(true),
            members: take(&mut map, "members", "an array of anchors")?.unwrap_or_default(),
            deleted: take(&mut map, "deleted", "true or false")?.unwrap_or(false),
        })
    }
}

/// What a JSON value is, for messages that do not quote it.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonValues {
    One(String),
    Many(Vec<String>),
}

/// Reads a JSON export: `{"objects": [...]}` or a bare array of
/// `{"anchor", "type": "user"|"group", "dn", "attributes", "enabled", "members", "deleted"}`.
pub fn parse_json(file: &str, text: &str) -> Result<ExportFile, ExportFileError> {
    let error = |location: String, field: &str, message: String| ExportFileError {
        file: file.to_owned(),
        location,
        field: field.to_owned(),
        message,
    };
    let document: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        error(
            format!("line {} column {}", e.line(), e.column()),
            "",
            format!("not valid JSON: {}", shortened(&e.to_string(), 80)),
        )
    })?;
    let records = match document {
        serde_json::Value::Array(records) => records,
        serde_json::Value::Object(mut wrapper) => match wrapper.remove("objects") {
            Some(serde_json::Value::Array(records)) => records,
            Some(other) => {
                return Err(error(
                    "the document".into(),
                    "objects",
                    format!("expected an array of records, found {}", json_kind(&other)),
                ));
            }
            None => {
                return Err(error(
                    "the document".into(),
                    "objects",
                    "required: a JSON export is {\"objects\": [...]} or an array of records".into(),
                ));
            }
        },
        other => {
            return Err(error(
                "the document".into(),
                "",
                format!(
                    "a JSON export is {{\"objects\": [...]}} or an array of records, not {}",
                    json_kind(&other)
                ),
            ));
        }
    };
    let mut parsed = ExportFile::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let location = format!("record {}", index + 1);
        let object = JsonObject::decode(record)
            .map_err(|(field, message)| error(location.clone(), &field, message))?;
        let anchor = SourceAnchor::parse("anchor", &object.anchor)
            .map_err(|e| error(location.clone(), &e.field, e.message))?
            .to_string();
        if let Some(first) = seen.insert(anchor.clone(), index + 1) {
            return Err(error(
                location,
                "anchor",
                format!("anchor {} already used by record {first}", excerpt(&anchor)),
            ));
        }
        let object_type = match object.object_type.as_str() {
            "user" => ObjectType::User,
            "group" => ObjectType::Group,
            other => {
                return Err(error(
                    location,
                    "type",
                    format!("{} is not \"user\" or \"group\"", excerpt(other)),
                ));
            }
        };
        parsed.objects.push(v1::SourceObject {
            anchor,
            object_type: object_type as i32,
            distinguished_name: object.dn,
            attributes: object
                .attributes
                .into_iter()
                .map(|(name, values)| {
                    let values = match values {
                        JsonValues::One(value) => vec![value],
                        JsonValues::Many(values) => values,
                    };
                    (name.to_ascii_lowercase(), AttributeValues { values })
                })
                .collect(),
            enabled: object.enabled,
            member_anchors: object.members,
            deleted_in_source: object.deleted,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDIF: &str = "version: 1\n\
# people\n\
dn: ou=people,dc=example,dc=org\n\
objectClass: organizationalUnit\n\
ou: people\n\
\n\
dn: uid=ada,ou=people,dc=example,dc=org\n\
objectClass: inetOrgPerson\n\
entryUUID: 6f1c0d1e-0000-4000-8000-000000000001\n\
cn: Ada\n \
Lovelace\n\
mail: ada@example.org\n\
\n\
dn: uid=bob,ou=people,dc=example,dc=org\n\
objectClass: user\n\
entryUUID: 6f1c0d1e-0000-4000-8000-000000000002\n\
cn:: Qm9iIETDvHJy\n\
userAccountControl: 514\n\
\n\
dn: cn=staff,ou=groups,dc=example,dc=org\n\
objectClass: groupOfNames\n\
entryUUID: 6f1c0d1e-0000-4000-8000-000000000003\n\
member: uid=ada,ou=people,dc=example,dc=org\n\
member: UID=Bob, OU=People, DC=example, DC=org\n\
member: uid=gone,ou=people,dc=example,dc=org\n";

    #[test]
    fn ldif_entries_become_users_and_groups_with_resolved_members() {
        let file = parse_ldif("people.ldif", LDIF, &LdifOptions::default()).unwrap();
        assert_eq!(file.objects.len(), 3, "the OU is skipped");
        let ada = &file.objects[0];
        assert_eq!(ada.object_type, ObjectType::User as i32);
        assert_eq!(ada.attributes["cn"].values, ["AdaLovelace"]);
        assert!(ada.enabled);
        let bob = &file.objects[1];
        assert_eq!(bob.attributes["cn"].values, ["Bob Dürr"]);
        assert!(!bob.enabled, "userAccountControl 514 has the disabled bit");
        let staff = &file.objects[2];
        assert_eq!(staff.object_type, ObjectType::Group as i32);
        assert_eq!(
            staff.member_anchors,
            [ada.anchor.clone(), bob.anchor.clone()]
        );
        assert_eq!(
            file.unresolved_members,
            ["uid=gone,ou=people,dc=example,dc=org"]
        );
    }

    #[test]
    fn ldif_errors_name_file_line_and_field() {
        let missing_anchor = "dn: uid=x,dc=example,dc=org\nobjectClass: person\ncn: x\n";
        let error = parse_ldif("x.ldif", missing_anchor, &LdifOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.ldif: line 1: entryUUID or objectGUID: entry \"uid=x,dc=example,dc=org\" has no anchor"
        );

        let duplicate = "dn: a\nobjectClass: person\nentryUUID: 1\n\ndn: b\nobjectClass: person\nentryUUID: 1\n";
        let error = parse_ldif("d.ldif", duplicate, &LdifOptions::default()).unwrap_err();
        assert_eq!(error.location, "line 5");
        assert!(error.message.contains("line 1"), "{error}");

        let change = "dn: a\nchangetype: delete\n";
        assert_eq!(
            parse_ldif("c.ldif", change, &LdifOptions::default())
                .unwrap_err()
                .field,
            "changetype"
        );
    }

    #[test]
    fn ad_object_guids_are_canonical_text() {
        let guid = base64::engine::general_purpose::STANDARD.encode([
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
            0xde, 0xf0,
        ]);
        let text = format!("dn: cn=x,dc=corp\nobjectClass: user\nobjectGUID:: {guid}\n");
        let options = LdifOptions {
            anchor_attribute: "objectGUID".into(),
        };
        let file = parse_ldif("ad.ldif", &text, &options).unwrap();
        assert_eq!(
            file.objects[0].anchor,
            "12345678-1234-5678-1234-56789abcdef0"
        );
    }

    #[test]
    fn json_exports_match_and_errors_name_the_record_and_field() {
        let text = r#"{"objects": [
            {"anchor": "E-1", "type": "user", "attributes": {"cn": "Ada", "mail": ["a@x.org"]}},
            {"anchor": "G-1", "type": "group", "members": ["E-1"], "enabled": true}
        ]}"#;
        let file = parse_json("hr.json", text).unwrap();
        assert_eq!(file.objects[0].attributes["cn"].values, ["Ada"]);
        assert_eq!(file.objects[1].member_anchors, ["E-1"]);

        let bad_type = r#"[{"anchor": "E-1", "type": "robot"}]"#;
        let error = parse_json("hr.json", bad_type).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hr.json: record 1: type: \"robot\" is not \"user\" or \"group\""
        );

        let empty_anchor =
            r#"[{"anchor": "E-1", "type": "user"}, {"anchor": " ", "type": "user"}]"#;
        let error = parse_json("hr.json", empty_anchor).unwrap_err();
        assert_eq!(
            (error.location.as_str(), error.field.as_str()),
            ("record 2", "anchor")
        );

        let broken = "{\"objects\": [\n{\"anchor\": }";
        assert_eq!(
            parse_json("hr.json", broken).unwrap_err().location,
            "line 2 column 12"
        );

        let wrong_kind = r#"[{"anchor": 5, "type": "user"}]"#;
        assert_eq!(
            parse_json("hr.json", wrong_kind).unwrap_err().to_string(),
            "hr.json: record 1: anchor: expected a string, found a number"
        );
        let not_records = "[1, 2]";
        assert_eq!(
            parse_json("hr.json", not_records).unwrap_err().to_string(),
            "hr.json: record 1: a record is an object like {\"anchor\": \"E-1\", \"type\": \"user\"}, not a number"
        );
        let unknown = r#"[{"anchor": "E-1", "type": "user", "colour": "red"}]"#;
        assert_eq!(parse_json("hr.json", unknown).unwrap_err().field, "colour");
    }
}
