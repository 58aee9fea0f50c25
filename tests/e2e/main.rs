//! End-to-end tests: the five services run in-process on loopback against a fresh database
//! per test, and the tests talk to them only through gRPC.

mod binaries;
mod cli;
mod console;
mod cycle;
mod deploy;
mod export;
mod faults;
mod foundation;
mod imports;
mod jobs;
mod ldap;
mod log;
mod mail;
mod malformed;
mod outage;
mod protection;
mod quarantine;
mod recovery;
mod reliability;
mod retention;
mod roles;
mod scale_out;
mod scope;
mod secrets;
mod security;
mod tls;
mod trace;
mod watch;
