//! Domain types that parse at the edge: once a request is converted, an invalid id, anchor
//! or role cannot be represented; and the names the database stores (cycle states, actions,
//! scope rules) are one type every service shares, read strictly.

mod access;
mod action;
mod breach;
mod cycle;
mod email;
mod excerpt;
mod ids;
mod names;
mod scope;
mod stored;
pub mod target;
pub mod text;

pub use access::{Access, Principal, Role, UnknownRole};
pub use action::{ActionKind, ActionReason, ActionStatus, DeprovisionMode, ObjectKind};
pub use breach::Breach;
pub use cycle::{CycleState, QuarantineState, StepOwner, Verdict};
pub use email::parse_email;
pub use excerpt::{EXCERPT_CHARS, excerpt, shortened};
pub use ids::{CycleId, FieldError, JobId, SourceAnchor};
pub use names::UnknownName;
pub use scope::{AttributeMatch, ScopeRules, StoredJsonError};
pub use stored::stored_attributes;
