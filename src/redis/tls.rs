//! `rediss://`: the CA and the client certificate a builder may be given,
//! checked at build time, and the client built with them.
//!
//! TLS runs over rustls (no system OpenSSL). Without a CA, the server's
//! certificate must chain to one of the system's roots; with one
//! ([`RedisTierBuilder::ca_certificate_pem`](super::RedisTierBuilder::ca_certificate_pem)),
//! to that CA only. Either way the certificate must name the host of the
//! URL: a server that cannot prove who it is gets no connection (the
//! failure is logged, [`SharedStats::connected`](crate::shared::SharedStats::connected)
//! stays `false`, requests go to Account Kit): never a fallback to
//! plaintext or to an unchecked certificate.

use ::redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretSlice};

use super::error::RedisTierError;

/// The TLS settings of a builder.
#[derive(Default)]
pub(super) struct TlsSettings {
    /// PEM: the CA certificates the server's must chain to.
    pub(super) ca: Option<Vec<u8>>,
    /// PEM: a client certificate (chain) and its key, for mutual TLS.
    pub(super) identity: Option<(Vec<u8>, SecretSlice<u8>)>,
}

impl TlsSettings {
    /// Whether a CA or a client certificate was given.
    pub(super) fn is_set(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }

    /// The connection info of `url`, with these settings; refuses a
    /// setting it cannot use (TLS settings for a plaintext URL, a PEM
    /// without a readable certificate or key).
    pub(super) fn connection_info(&self, url: &str) -> Result<ConnectionInfo, RedisTierError> {
        let info = url
            .into_connection_info()
            .map_err(|_| RedisTierError::InvalidUrl)?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        if tls {
            ensure_crypto_provider();
        }
        if !self.is_set() {
            return Ok(info);
        }
        if !tls {
            return Err(RedisTierError::TlsWithoutRediss);
        }
        let root_cert = match &self.ca {
            Some(pem) if trust_anchors(pem) => Some(pem.clone()),
            Some(_) => return Err(RedisTierError::InvalidCaCertificate),
            None => None,
        };
        let client_tls = match &self.identity {
            Some((cert, key)) if certificates(cert) > 0 && private_key(key.expose_secret()) => {
                Some(ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.expose_secret().to_vec(),
                })
            }
            Some(_) => return Err(RedisTierError::InvalidClientCertificate),
            None => None,
        };
        let certificates = TlsCertificates {
            client_tls,
            root_cert,
        };
        // Checked above: what is left to fail is the URL.
        Client::build_with_tls(info, certificates)
            .map(|client| client.get_connection_info().clone())
            .map_err(|_| RedisTierError::InvalidUrl)
    }
}

/// Certificates in `pem`, if every one of them reads (0 if one does not).
fn certificates(pem: &[u8]) -> usize {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        if cert.is_err() {
            return 0;
        }
        n += 1;
    }
    n
}

/// Whether `pem` holds at least one certificate, each usable as a trust
/// anchor.
fn trust_anchors(pem: &[u8]) -> bool {
    let mut store = rustls::RootCertStore::empty();
    certificates(pem) > 0
        && CertificateDer::pem_slice_iter(pem).all(|cert| cert.is_ok_and(|c| store.add(c).is_ok()))
}

/// Whether `pem` holds a private key.
fn private_key(pem: &[u8]) -> bool {
    PrivateKeyDer::from_pem_slice(pem).is_ok()
}

/// The redis crate builds its rustls configuration with the process's
/// default crypto provider, which rustls picks by itself only when exactly
/// one is compiled in. If the process has none yet, installs aws-lc-rs's,
/// the one this crate's HTTPS client uses (an application that installs
/// its own before building the tier keeps it).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile; that one is kept.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_PEM: &[u8] = b"not a certificate";
    // A PEM block that is not a certificate.
    const KEY_ONLY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    fn settings(ca: &[u8]) -> TlsSettings {
        TlsSettings {
            ca: Some(ca.to_vec()),
            identity: None,
        }
    }

    #[test]
    fn tls_settings_need_a_rediss_url_and_a_readable_pem() {
        let none = TlsSettings::default();
        assert!(none.connection_info("rediss://127.0.0.1:6380/").is_ok());
        assert!(none.connection_info("redis://127.0.0.1:6379/").is_ok());
        assert!(matches!(
            settings(NOT_PEM).connection_info("redis://127.0.0.1:6379/"),
            Err(RedisTierError::TlsWithoutRediss)
        ));
        for pem in [NOT_PEM, KEY_ONLY, b"".as_slice()] {
            assert!(matches!(
                settings(pem).connection_info("rediss://127.0.0.1:6380/"),
                Err(RedisTierError::InvalidCaCertificate)
            ));
        }
        let identity = TlsSettings {
            ca: None,
            identity: Some((NOT_PEM.to_vec(), SecretSlice::from(KEY_ONLY.to_vec()))),
        };
        assert!(matches!(
            identity.connection_info("rediss://127.0.0.1:6380/"),
            Err(RedisTierError::InvalidClientCertificate)
        ));
    }
}
