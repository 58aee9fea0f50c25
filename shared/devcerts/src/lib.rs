//! A development certificate authority, made in process (no `openssl` in scripts): one server
//! certificate every service presents and one client certificate peers and tools present when
//! the services require mutual TLS. `scripts/run` and the TLS end-to-end runs use it;
//! production deployments bring certificates from their own CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Names every development server certificate carries: loopback, plus the host names the
/// compose file gives the services.
pub const SERVICE_HOSTS: [&str; 10] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "ingest",
    "stager",
    "gate",
    "notifier",
    "retention",
    "exporter",
    "console",
];

/// The PEM texts of a fresh development CA and its two leaf certificates.
pub struct DevCertificates {
    /// The CA certificate clients trust (`SYNCGUARD_TLS_CA`, `grpcurl -cacert`).
    pub ca: String,
    /// The server certificate (`SYNCGUARD_TLS_CERT`).
    pub server_cert: String,
    /// Its private key (`SYNCGUARD_TLS_KEY`).
    pub server_key: String,
    /// The client certificate (`SYNCGUARD_TLS_CLIENT_CERT`) for mutual TLS.
    pub client_cert: String,
    /// Its private key (`SYNCGUARD_TLS_CLIENT_KEY`).
    pub client_key: String,
}

/// Where [`DevCertificates::write_to`] put each file.
#[derive(Debug, Clone)]
pub struct DevCertificatePaths {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem`.
    pub server_cert: PathBuf,
    /// `server-key.pem` (mode 600).
    pub server_key: PathBuf,
    /// `client.pem`.
    pub client_cert: PathBuf,
    /// `client-key.pem` (mode 600).
    pub client_key: PathBuf,
}

impl DevCertificatePaths {
    /// The file names inside `directory`.
    pub fn in_directory(directory: &Path) -> Self {
        Self {
            ca: directory.join("ca.pem"),
            server_cert: directory.join("server.pem"),
            server_key: directory.join("server-key.pem"),
            client_cert: directory.join("client.pem"),
            client_key: directory.join("client-key.pem"),
        }
    }

    /// Whether every file is present (scripts keep an existing set).
    pub fn all_exist(&self) -> bool {
        [
            &self.ca,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
        .iter()
        .all(|path| path.is_file())
    }
}

impl DevCertificates {
    /// A new CA whose server certificate names `hosts` (DNS names or IP addresses).
    pub fn generate(hosts: &[&str]) -> anyhow::Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "syncguard development CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let leaf = |names: Vec<String>, common_name: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names)?;
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            anyhow::Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            hosts.iter().map(|host| (*host).to_owned()).collect(),
            "syncguard service",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            vec!["syncguard-client".to_owned()],
            "syncguard client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        })
    }

    /// Writes the five files into `directory` (created if missing); keys are readable by
    /// the owner only.
    pub fn write_to(&self, directory: &Path) -> anyhow::Result<DevCertificatePaths> {
        std::fs::create_dir_all(directory)?;
        let paths = DevCertificatePaths::in_directory(directory);
        write_file(&paths.ca, &self.ca, 0o644)?;
        write_file(&paths.server_cert, &self.server_cert, 0o644)?;
        write_file(&paths.server_key, &self.server_key, 0o600)?;
        write_file(&paths.client_cert, &self.client_cert, 0o644)?;
        write_file(&paths.client_key, &self.client_key, 0o600)?;
        Ok(paths)
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Replace rather than rewrite in place, so a key never sits world-readable for a moment.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
