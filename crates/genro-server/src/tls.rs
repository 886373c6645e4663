//! TLS from `[ssl]`: rustls through tokio-rustls, ALPN for HTTP/2 and HTTP/1.1, a handshake
//! deadline, a cap on the handshakes worked on at once, and certificates that can be swapped
//! while connections stay open.
//!
//! rustls is a TLS implementation in Rust, used here with the `ring` provider (no C toolchain
//! beyond a compiler for ring's few assembly files); tokio-rustls adapts it to tokio's IO. The
//! certificate is served through a resolver that reads the current one from an `ArcSwap`, so a
//! reload replaces it for new handshakes without touching established connections.

use std::{fmt, path::Path, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{Acceptor, ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{server::TlsStream, LazyConfigAcceptor};

use crate::{config::SslSection, slots::Slots};

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
    config: Arc<rustls::ServerConfig>,
    pub(crate) certificates: Arc<Certificates>,
    /// `[ssl] max_handshakes`: a slot per handshake being worked on.
    handshakes: Option<Slots>,
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
            config: Arc::new(config),
            certificates,
            handshakes: (section.max_handshakes > 0).then(|| Slots::new(section.max_handshakes)),
        })
    }

    /// The handshake on `stream`. The client's hello is read first, which costs the server
    /// nothing; the work (key exchange, signature) waits for a slot of `[ssl] max_handshakes`,
    /// held until the handshake ends. A client that connects and stalls before its hello holds
    /// no slot; the caller's `handshake_timeout` bounds both the stall and the wait.
    pub(crate) async fn accept<IO>(&self, stream: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let hello = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        let _slot = match &self.handshakes {
            Some(slots) => slots.take().await,
            None => None,
        };
        hello.into_stream(self.config.clone()).await
    }

    /// Serves `certified` (read by [`load`]) to the handshakes that follow.
    pub(crate) fn install(&self, certified: CertifiedKey) {
        self.certificates.current.store(Arc::new(certified));
    }
}
