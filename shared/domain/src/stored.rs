//! Reading the stored JSON form of an object's attributes (`{"name": ["value", ...]}`),
//! shared by every service that turns a stored object into an API view or a target write.

/// The attributes of a stored object, name by name; anything not in the stored shape (a
/// non-object, a non-array, a non-string value) is left out rather than guessed at.
pub fn stored_attributes(
    value: &serde_json::Value,
) -> impl Iterator<Item = (&String, Vec<String>)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, values)| {
            let values = values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect();
            (name, values)
        })
}
