//! HTTPS for the double: real Bedrock is only reachable over TLS, so a
//! benchmark or test that wants production's cost (handshakes, record
//! encryption, ALPN) serves the double over it. The certificate is made
//! fresh for each double, self-signed, for `127.0.0.1` and `localhost`; its
//! PEM is handed to the client, which trusts it the way a deployment trusts a
//! private CA (`AWS_CA_BUNDLE` for the data plane).

use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The server side of the double's TLS, and the certificate to trust.
pub struct Identity {
    pub acceptor: TlsAcceptor,
    /// The self-signed certificate, PEM-encoded.
    pub ca_pem: String,
}

/// A new self-signed identity offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn identity() -> io::Result<Identity> {
    let other = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| other(&e))?;
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).map_err(|e| other(&e))?;
    let cert = params.self_signed(&key).map_err(|e| other(&e))?;
    let ca_pem = cert.pem();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider.into())
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| other(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Identity { acceptor: TlsAcceptor::from(Arc::new(config)), ca_pem })
}
