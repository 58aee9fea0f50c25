//! The service bootstrap every syncguard service shares, so each `main.rs` stays small:
//! configuration from the environment, bearer-token authentication with roles, the tower
//! stack, health that reads SERVING only while the database answers, reflection, background
//! work that drains on shutdown, graceful shutdown, and authenticated, traced channels to
//! peer services.

mod allowed_hosts;
mod auth;
mod background;
mod config;
mod cycle_events;
mod cycle_wait;
mod health_probe;
mod host;
mod main_entry;
mod own_service;
mod paging;
mod peers;
mod policy;
mod readiness;
mod secrets;
mod shutdown;
mod status;
mod tls;
mod tokens;
mod wake;

pub use allowed_hosts::AllowedHosts;
pub use auth::{AuthLayer, AuthService, SharedTokens};
pub use background::{Background, KeyedWorker};
pub use config::{
    ConfigError, Listen, PeerUrls, ServiceConfig, ServiceName, console_url, parse_or, parse_var,
    token_table,
};
pub use cycle_events::{CYCLE_EVENTS_CHANNEL, CycleEvents, FEED_EVENTS_CHANNEL, JobEvents};
pub use cycle_wait::{StepOwners, wait_settled};
pub use health_probe::url_host;
pub use host::{
    HTTP2_CONNECTION_WINDOW, HTTP2_STREAM_WINDOW, ServiceHost, reload_tokens_on_hangup,
};
pub use main_entry::{run_main, run_program};
pub use own_service::{OwnService, OwnServiceLayer};
pub use paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, page, timestamp};
pub use peers::{AddAuthorization, PeerChannel, UnsendableToken, peer_channel, peer_endpoint};
pub use policy::{METHOD_ACCESS, Requirement, is_open_path, requirement, roles_markdown};
pub use readiness::{Readiness, ReadinessLayer, ReadinessService};
pub use secrets::{SECRET_VARIABLE_PREFIX, Secret, SecretError, SecretName, SecretStore};
pub use shutdown::shutdown_signal;
pub use status::{field_violation, peer_status, peer_unreachable, principal, store_status};
pub use tls::{PemPair, TlsSettings, pem_pair, read_pem};
pub use tokens::{MIN_TOKEN_LEN, TokenTable, TokenTableError, token_digest};
pub use wake::{WAKE_TIMEOUT, wake};
