//! `syncguard dev-certs`: a throwaway CA and certificates so a development run speaks TLS
//! like a deployment does (`scripts/run` calls it; grpcurl takes the CA with `-cacert`).

use syncguard_devcerts::{DevCertificatePaths, DevCertificates, SERVICE_HOSTS};

use crate::args::DevCertsArgs;
use crate::failure::Failure;
use crate::out;

/// Writes the certificates and says where they are.
pub fn dev_certs(args: DevCertsArgs) -> Result<(), Failure> {
    let paths = DevCertificatePaths::in_directory(&args.out);
    if args.keep_existing && paths.all_exist() {
        out!("kept the certificates in {}", args.out.display())?;
        return Ok(());
    }
    let mut hosts: Vec<&str> = SERVICE_HOSTS.to_vec();
    hosts.extend(args.hosts.iter().map(String::as_str));
    let certificates = DevCertificates::generate(&hosts)
        .map_err(|error| Failure::other(format!("cannot make the certificates: {error:#}")))?;
    let paths = certificates
        .write_to(&args.out)
        .map_err(|error| Failure::other(format!("{error:#}")))?;
    out!(
        "CA (SYNCGUARD_TLS_CA, --ca, grpcurl -cacert): {}",
        paths.ca.display()
    )?;
    out!(
        "server (SYNCGUARD_TLS_CERT, SYNCGUARD_TLS_KEY): {} {}",
        paths.server_cert.display(),
        paths.server_key.display()
    )?;
    out!(
        "client (SYNCGUARD_TLS_CLIENT_CERT, SYNCGUARD_TLS_CLIENT_KEY, --cert/--key): {} {}",
        paths.client_cert.display(),
        paths.client_key.display()
    )?;
    out!("server names: {}", hosts.join(", "))?;
    Ok(())
}
