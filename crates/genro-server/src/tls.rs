//! TLS from `[ssl]`: rustls through tokio-rustls, ALPN for HTTP/2 and HTTP/1.1, a handshake
//! deadline, and certificates that can be swapped while connections stay open.
//!
//! rustls is a TLS implementation in Rust, used here with the `ring` provider (no C toolchain
//! beyond a compiler for ring's few assembly files); tokio-rustls adapts it to tokio's IO. The
//! certificate is served through a resolver that reads the current one from an `ArcSwap`, so a
//! reload replaces it for new handshakes without touching established connections.

use std::{fmt, path::Path, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::config::SslSection;

/// The certificate in force, swapped on reload.
pub(crate) struct Certificates {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("chain", &self.current.load().cert.len())
            .finish()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the chain and key `section` names, and checks that they belong together.
pub(crate) fn load(section: &SslSection) -> Result<CertifiedKey, String> {
    let (Some(certfile), Some(keyfile)) = (&section.certfile, &section.keyfile) else {
        return Err("ssl.certfile and ssl.keyfile are required when ssl.enabled is true".into());
    };
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .map_err(|e| format!("ssl.certfile: cannot read {:?}: {e}", shown(certfile)))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "ssl.certfile: {:?} is not a PEM certificate chain: {e}",
                shown(certfile)
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "ssl.certfile: no certificate in {:?}",
            shown(certfile)
        ));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
        format!(
            "ssl.keyfile: {:?} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            shown(keyfile)
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("ssl.keyfile: {:?}: unsupported key: {e}", shown(keyfile)))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "ssl.keyfile: {:?} does not match the certificate in {:?}: {e}",
            shown(keyfile),
            shown(certfile)
        )
    })?;
    Ok(certified)
}

/// What the server needs to serve TLS.
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) certificates: Arc<Certificates>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// The acceptor for `section`.
    pub(crate) fn new(section: &SslSection) -> Result<Self, String> {
        let certificates = Arc::new(Certificates {
            current: ArcSwap::from_pointee(load(section)?),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("ssl: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certificates,
        })
    }

    /// Serves `certified` (read by [`load`]) to the handshakes that follow.
    pub(crate) fn install(&self, certified: CertifiedKey) {
        self.certificates.current.store(Arc::new(certified));
    }
}
