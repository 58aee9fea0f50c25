//! Domain types that parse at the edge: once a request is converted, an invalid id, anchor
//! or role cannot be represented.

mod access;
mod email;
mod ids;

pub use access::{Access, Principal, Role, UnknownRole};
pub use email::parse_email;
pub use ids::{CycleId, FieldError, JobId, SourceAnchor};
