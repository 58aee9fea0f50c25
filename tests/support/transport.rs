//! How the tests' connections are secured. Plaintext by default; with
//! `SYNCGUARD_E2E_TLS=1` every service of every test serves TLS with a throwaway CA and
//! every client verifies it (`SYNCGUARD_E2E_TLS=mutual`: client certificates required too).
//! CI runs the whole suite once each way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use syncguard_bootstrap::TlsSettings;
use syncguard_devcerts::{DevCertificatePaths, DevCertificates, SERVICE_HOSTS};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The certificates of this test process and whether clients must present one.
#[derive(Debug, Clone)]
pub struct TestTls {
    paths: DevCertificatePaths,
    mutual: bool,
}

/// The TLS of this test run, or `None` for plaintext. Certificates are made once per process.
pub fn test_tls() -> Option<&'static TestTls> {
    static TLS: OnceLock<Option<TestTls>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mode = std::env::var("SYNCGUARD_E2E_TLS").unwrap_or_default();
        let mutual = match mode.trim() {
            "" | "0" | "off" => return None,
            "1" | "on" | "tls" => false,
            "mutual" | "mtls" => true,
            other => panic!(
                "SYNCGUARD_E2E_TLS={other:?}: use 1 (TLS) or mutual (client certificates too)"
            ),
        };
        Some(TestTls::generate(mutual).expect("the test certificates are made"))
    })
    .as_ref()
}

impl TestTls {
    /// A fresh CA and certificates in a temporary directory.
    pub fn generate(mutual: bool) -> anyhow::Result<Self> {
        let directory: PathBuf =
            std::env::temp_dir().join(format!("syncguard-tls-{}", uuid::Uuid::new_v4()));
        let paths = DevCertificates::generate(&SERVICE_HOSTS)?.write_to(&directory)?;
        Ok(Self { paths, mutual })
    }

    /// The same CA, for a client that presents no certificate.
    pub fn without_client_certificate(&self) -> Self {
        Self {
            paths: self.paths.clone(),
            mutual: false,
        }
    }

    /// The files.
    pub fn paths(&self) -> &DevCertificatePaths {
        &self.paths
    }

    /// The variables a service binary serves and calls its peers with.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let path = |path: &std::path::Path| path.display().to_string();
        let mut env = vec![
            (
                "SYNCGUARD_TLS_CERT".to_owned(),
                path(&self.paths.server_cert),
            ),
            ("SYNCGUARD_TLS_KEY".to_owned(), path(&self.paths.server_key)),
            ("SYNCGUARD_TLS_CA".to_owned(), path(&self.paths.ca)),
        ];
        if self.mutual {
            env.push(("SYNCGUARD_TLS_CLIENT_CA".to_owned(), path(&self.paths.ca)));
            env.push((
                "SYNCGUARD_TLS_CLIENT_CERT".to_owned(),
                path(&self.paths.client_cert),
            ));
            env.push((
                "SYNCGUARD_TLS_CLIENT_KEY".to_owned(),
                path(&self.paths.client_key),
            ));
        }
        env
    }

    /// The same settings for a service started in-process.
    pub fn settings(&self) -> TlsSettings {
        let env = self.service_env();
        TlsSettings::from_lookup(&|name: &str| {
            env.iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.clone())
        })
        .expect("the test certificates load")
    }

    /// What a test client verifies servers with (and presents, under mutual TLS).
    pub fn client_config(&self) -> ClientTlsConfig {
        let read = |path: &std::path::Path| {
            std::fs::read(path).expect("the test certificates are readable")
        };
        let config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&self.paths.ca)));
        if self.mutual {
            config.identity(Identity::from_pem(
                read(&self.paths.client_cert),
                read(&self.paths.client_key),
            ))
        } else {
            config
        }
    }

    /// The `syncguard` CLI's variables.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let path = |path: &std::path::Path| path.display().to_string();
        let mut env = vec![("SYNCGUARD_CA".to_owned(), path(&self.paths.ca))];
        if self.mutual {
            env.push((
                "SYNCGUARD_CLIENT_CERT".to_owned(),
                path(&self.paths.client_cert),
            ));
            env.push((
                "SYNCGUARD_CLIENT_KEY".to_owned(),
                path(&self.paths.client_key),
            ));
        }
        env
    }

    /// grpcurl's connection flags.
    pub fn grpcurl_args(&self) -> Vec<String> {
        let path = |path: &std::path::Path| path.display().to_string();
        let mut args = vec!["-cacert".to_owned(), path(&self.paths.ca)];
        if self.mutual {
            args.extend([
                "-cert".to_owned(),
                path(&self.paths.client_cert),
                "-key".to_owned(),
                path(&self.paths.client_key),
            ]);
        }
        args
    }
}

/// The URL of a service at `address` in this run (`http://` or `https://`).
pub fn service_url(address: SocketAddr) -> String {
    let scheme = if test_tls().is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{address}")
}

/// grpcurl's connection flags in this run (`-plaintext`, or the CA and client certificate).
pub fn grpcurl_connection_args() -> Vec<String> {
    test_tls().map_or_else(|| vec!["-plaintext".to_owned()], TestTls::grpcurl_args)
}

/// Variables the `syncguard` CLI needs in this run.
pub fn cli_env() -> Vec<(String, String)> {
    test_tls().map(TestTls::cli_env).unwrap_or_default()
}

/// Variables a service binary needs in this run.
pub fn service_env() -> Vec<(String, String)> {
    test_tls().map(TestTls::service_env).unwrap_or_default()
}
