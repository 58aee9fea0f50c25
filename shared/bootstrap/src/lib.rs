//! The service bootstrap all five syncguard services share, so each `main.rs` stays small:
//! configuration from the environment, bearer-token authentication with roles, the tower
//! stack, health that turns SERVING only once the database answers, reflection, graceful
//! shutdown, and authenticated, traced channels to peer services.

mod auth;
mod config;
mod health_probe;
mod host;
mod main_entry;
mod paging;
mod peers;
mod policy;
mod shutdown;
mod status;
mod tokens;

pub use auth::{AuthLayer, AuthService};
pub use config::{ConfigError, Listen, PeerUrls, ServiceConfig, ServiceName};
pub use host::{HTTP2_CONNECTION_WINDOW, HTTP2_STREAM_WINDOW, ServiceHost};
pub use main_entry::run_main;
pub use paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, page, timestamp};
pub use peers::{AddAuthorization, PeerChannel, peer_channel};
pub use policy::required_access;
pub use shutdown::shutdown_signal;
pub use status::{field_violation, principal, store_status};
pub use tokens::{TokenTable, TokenTableError};
