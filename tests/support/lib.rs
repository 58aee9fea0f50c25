//! Support for the end-to-end tests: a throwaway database per test, the five services
//! started in-process on pre-bound loopback listeners, and authenticated gRPC clients.

pub mod browser;
mod database;
pub mod directory;
pub mod pg_cluster;
pub mod processes;
pub mod raw;
pub mod scim;
pub mod slapd;
pub mod smtp;
mod suite;
pub mod transport;

pub use database::TestDatabase;
pub use suite::{
    Authed, BearerToken, Suite, SuiteOptions, Tokens, channel_to, loopback_channel, wait_for,
    wait_until_serving, wait_until_serving_on,
};
