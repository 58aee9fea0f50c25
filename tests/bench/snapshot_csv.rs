//! The `\copy` anchor's file: a snapshot's rows as CSV in `source_objects`' column order, the
//! way psql users load a snapshot. Ingest itself sends COPY's binary format (see
//! `syncguard_ingest::copy_binary`); the benchmark times both.

use syncguard_ingest::source_object::CanonicalObject;

/// Appends `object` as one CSV row of `(snapshot_id, anchor, change, object_type,
/// distinguished_name, attributes, enabled, member_anchors, deleted_in_source, content_hash)`.
pub fn write_row(object: &CanonicalObject, snapshot_id: &str, change: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(snapshot_id.as_bytes());
    out.push(b',');
    quoted(object.anchor.as_bytes(), out);
    out.push(b',');
    out.extend_from_slice(change.as_bytes());
    out.push(b',');
    out.extend_from_slice(object.object_type.as_bytes());
    out.push(b',');
    quoted(object.distinguished_name.as_bytes(), out);
    out.push(b',');
    let attributes = serde_json::to_vec(&object.attributes).unwrap_or_else(|_| b"{}".to_vec());
    quoted(&attributes, out);
    out.push(b',');
    out.push(if object.enabled { b't' } else { b'f' });
    out.push(b',');
    quoted(text_array(&object.member_anchors).as_bytes(), out);
    out.push(b',');
    out.push(if object.deleted_in_source { b't' } else { b'f' });
    out.push(b',');
    out.extend_from_slice(b"\\x");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in object.content_hash {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0x0f)]);
    }
    out.push(b'\n');
}

/// A CSV field, always quoted so an empty string stays an empty string (not NULL).
fn quoted(value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    let mut rest = value;
    while let Some(quote) = rest.iter().position(|&byte| byte == b'"') {
        out.extend_from_slice(&rest[..=quote]);
        out.push(b'"');
        rest = &rest[quote + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// A Postgres `text[]` literal: `{"a","b\"c"}`.
fn text_array(values: &[String]) -> String {
    let mut literal = String::from("{");
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use syncguard_proto::v1::{self, ObjectType};

    #[test]
    fn rows_escape_quotes_and_arrays() {
        let group = v1::SourceObject {
            anchor: "G\"1".into(),
            object_type: ObjectType::Group as i32,
            member_anchors: vec!["a\"b".into(), "c\\d".into()],
            distinguished_name: "cn=a,b".into(),
            ..Default::default()
        };
        let canonical = syncguard_ingest::source_object::canonicalize(0, group).unwrap();
        let mut out = Vec::new();
        super::write_row(&canonical, "s", "present", &mut out);
        let row = String::from_utf8(out).unwrap();
        assert!(
            row.starts_with(
                "s,\"G\"\"1\",present,group,\"cn=a,b\",\"{}\",f,\"{\"\"a\\\"\"b\"\",\"\"c\\\\d\"\"}\",f,\\x"
            ),
            "{row}"
        );
    }
}
