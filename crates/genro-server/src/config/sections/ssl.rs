//! `[ssl]`: its struct, its defaults (`Default`), and `read`.

use std::{path::PathBuf, time::Duration};

use crate::config::{
    resolver::Resolver,
    value::{BOOLEAN, COUNT, PATH},
};

/// `[ssl]`: TLS for the main port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslSection {
    /// Serve TLS (`enabled`).
    pub enabled: bool,
    /// PEM certificate chain (`certfile`).
    pub certfile: Option<PathBuf>,
    /// PEM private key (`keyfile`).
    pub keyfile: Option<PathBuf>,
    /// Longest a client may take to finish the TLS handshake (`handshake_timeout`),
    /// counted from the connection's accept (a wait for a handshake slot included).
    pub handshake_timeout: Duration,
    /// Most TLS handshakes worked on at once (`max_handshakes`); 0 for no cap. A
    /// handshake takes a slot once the client's hello has arrived; past the cap, new ones wait
    /// (within their `handshake_timeout`), so a flood of handshakes cannot take all the CPU.
    pub max_handshakes: usize,
}

impl Default for SslSection {
    fn default() -> Self {
        Self {
            enabled: false,
            certfile: None,
            keyfile: None,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
        }
    }
}

impl SslSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "ssl";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (certfile, cert_source) = r.read(s, "certfile", d.certfile, &PATH);
        let (keyfile, key_source) = r.read(s, "keyfile", d.keyfile, &PATH);
        if enabled {
            for (key, file, source) in [
                ("certfile", &certfile, cert_source),
                ("keyfile", &keyfile, key_source),
            ] {
                match file {
                    None => r.problem(s, key, source, "is required when ssl.enabled is true"),
                    Some(p) => {
                        if let Err(e) = std::fs::File::open(p) {
                            r.problem(
                                s,
                                key,
                                source,
                                format!("cannot read {:?}: {e}", p.display().to_string()),
                            );
                        }
                    }
                }
            }
        }
        Self {
            enabled,
            certfile,
            keyfile,
            handshake_timeout: r.positive(s, "handshake_timeout", d.handshake_timeout),
            max_handshakes: r.get(s, "max_handshakes", d.max_handshakes, &COUNT),
        }
    }
}
