//! HTTPS for the API's listener: the rustls server configuration from PEM files
//! (`BOXOFFICE_TLS_CERT`, `BOXOFFICE_TLS_KEY`), read once at start so that a bad
//! file stops the start with its path, and `boxoffice tls self-signed` for trying it.
//! HTTP/1.1 only (ALPN `http/1.1`), as the plain listener speaks.

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

/// The server configuration for `cert` and `key`, or why not.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the TLS certificate file {} holds no certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not make a pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`, valid for localhost,
/// 127.0.0.1, ::1 and `names`. Returns their paths.
pub fn self_signed(
    dir: &Path,
    names: &[String],
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let mut all = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    all.extend(names.iter().cloned());
    let made = rcgen::generate_simple_self_signed(all).context("making the certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_self_signed_pair_loads_and_a_mismatched_one_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (cert, key) = super::self_signed(a.path(), &["shop.test".into()]).unwrap();
        super::server_config(&cert, &key).unwrap();
        let (_, other_key) = super::self_signed(b.path(), &[]).unwrap();
        let err = super::server_config(&cert, &other_key).unwrap_err();
        assert!(format!("{err:#}").contains("pair"), "{err:#}");
        let err = super::server_config(&a.path().join("missing.pem"), &key).unwrap_err();
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }
}
