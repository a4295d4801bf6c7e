//! [`Node`]: a ractor_cluster node server with the two things ractor_cluster
//! leaves to its users — staying connected to peers (it never reconnects by
//! itself) and TLS set up from PEM files.
//!
//! [`Node::connect`] keeps one peer connected for as long as the node
//! lives: a task per peer dials it, waits for the session to authenticate,
//! and after any disconnect (or a failed dial, or a session closed by the
//! handshake — a wrong cookie looks like that) dials again, backing off
//! from 100 ms to 5 s with jitter. The cookie is required: ractor_cluster
//! checks it in its handshake and closes any session that does not know it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::Notify;

/// TLS between nodes: this node's certificate and key, and the CA that
/// signs its peers' certificates (each node verifies the other: mutual
/// TLS).
#[derive(Debug)]
pub struct TlsConfig {
    /// This node's certificate chain.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
    /// The certificates trusted to sign peers' certificates.
    pub ca: Vec<CertificateDer<'static>>,
    /// The name peers' certificates are checked against when this node
    /// dials them.
    pub server_name: String,
}

impl TlsConfig {
    /// Reads the certificate chain, key and CA from PEM files.
    ///
    /// # Errors
    /// A file that cannot be read or holds no PEM item of the right kind.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        ca: &Path,
        server_name: impl Into<String>,
    ) -> Result<Self, NodeError> {
        let certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, NodeError> {
            let v = CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| NodeError::Tls(format!("{}: {e}", p.display())))?;
            if v.is_empty() {
                return Err(NodeError::Tls(format!("{}: no certificate", p.display())));
            }
            Ok(v)
        };
        Ok(Self {
            cert_chain: certs(cert)?,
            key: PrivateKeyDer::from_pem_file(key)
                .map_err(|e| NodeError::Tls(format!("{}: {e}", key.display())))?,
            ca: certs(ca)?,
            server_name: server_name.into(),
        })
    }

    fn roots(&self) -> Result<rustls::RootCertStore, NodeError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| NodeError::Tls(format!("CA certificate: {e}")))?;
        }
        Ok(roots)
    }

    fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, NodeError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(self.roots()?))
            .build()
            .map_err(|e| NodeError::Tls(format!("client verifier: {e}")))?;
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| NodeError::Tls(format!("server certificate: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    fn connector(&self) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), NodeError> {
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| NodeError::Tls(format!("client certificate: {e}")))?;
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| NodeError::Tls(format!("server name {:?}: {e}", self.server_name)))?;
        Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
    }
}

/// How to start a node.
#[derive(Debug)]
pub struct NodeConfig {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The host name peers reach it by (and the address it listens on).
    pub host: String,
    /// The port it listens on.
    pub port: u16,
    /// The shared secret every node of the cluster must have.
    pub cookie: String,
    /// TLS between nodes, if any; all nodes of a cluster must agree.
    pub tls: Option<TlsConfig>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The cookie is empty.
    #[error("a cookie is required (--cookie or CORRAL_COOKIE)")]
    NoCookie,
    /// The TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// ractor could not spawn the node server.
    #[error("could not start the node server: {0}")]
    Spawn(String),
}

/// Sessions that are ready, by peer address, and a signal when that
/// changes.
#[derive(Default)]
struct Sessions {
    ready: Mutex<HashSet<String>>,
    changed: Notify,
}

struct Events(Arc<Sessions>);

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = %ses.peer_addr, "node session closed");
        self.0.ready.lock().remove(&ses.peer_addr);
        self.0.changed.notify_waiters();
    }

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = %ses.peer_addr, name = ?ses.peer_name.as_ref().map(|n| &n.name), "node session ready");
        self.0.ready.lock().insert(ses.peer_addr.clone());
        self.0.changed.notify_waiters();
    }
}

/// A running node; see the module docs. Dropping it stops the node server
/// and its peer keepers.
pub struct Node {
    server: ActorRef<NodeServerMessage>,
    sessions: Arc<Sessions>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    keepers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    port: u16,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Node {
    /// Starts the node server, listening on `config.host:config.port`.
    ///
    /// # Errors
    /// [`NodeError`].
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        if config.cookie.is_empty() {
            return Err(NodeError::NoCookie);
        }
        let (encryption, tls) = match &config.tls {
            Some(t) => (
                Some(IncomingEncryptionMode::Tls(t.acceptor()?)),
                Some(t.connector()?),
            ),
            None => (None, None),
        };
        let server = NodeServer::new(
            config.port,
            config.cookie,
            config.name,
            config.host,
            encryption,
            Some(NodeConnectionMode::Isolated),
        );
        let (actor, _join) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| NodeError::Spawn(e.to_string()))?;
        let sessions = Arc::new(Sessions::default());
        actor
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "corral-node".into(),
                subscription: Box::new(Events(sessions.clone())),
            })
            .map_err(|e| NodeError::Spawn(e.to_string()))?;
        Ok(Self {
            server: actor,
            sessions,
            tls,
            keepers: Mutex::new(vec![]),
            port: config.port,
        })
    }

    /// The node server actor (for ractor_cluster's own calls).
    pub fn server(&self) -> &ActorRef<NodeServerMessage> {
        &self.server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Keeps `peer` connected for as long as this node lives: dials it now
    /// and again after every disconnect, with backoff.
    pub fn connect(&self, peer: SocketAddr) {
        let server = self.server.clone();
        let sessions = self.sessions.clone();
        let tls = self.tls.clone();
        let task = tokio::spawn(keep_connected(server, sessions, tls, peer));
        self.keepers.lock().push(task);
    }

    /// Whether a session with `peer` is up and authenticated.
    pub fn is_connected(&self, peer: SocketAddr) -> bool {
        self.sessions.ready.lock().contains(&peer.to_string())
    }

    /// Waits until a session with `peer` is up, or `timeout`.
    pub async fn wait_connected(&self, peer: SocketAddr, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.sessions.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_connected(peer) {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.is_connected(peer);
            }
        }
    }

    /// Stops the node server and the peer keepers.
    pub fn stop(&self) {
        for k in self.keepers.lock().drain(..) {
            k.abort();
        }
        self.server.stop(None);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn keep_connected(
    server: ActorRef<NodeServerMessage>,
    sessions: Arc<Sessions>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    peer: SocketAddr,
) {
    let key = peer.to_string();
    let mut backoff = BACKOFF_MIN;
    loop {
        // Connected: wait for the session to go.
        loop {
            let changed = sessions.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !sessions.ready.lock().contains(&key) {
                break;
            }
            changed.await;
        }
        let dialled = match &tls {
            Some((connector, name)) => {
                ractor_cluster::client_connect_enc(&server, peer, connector.clone(), name.clone())
                    .await
            }
            None => ractor_cluster::client_connect(&server, peer).await,
        };
        match dialled {
            Ok(()) => {
                // Give the handshake time to finish; a session that never
                // becomes ready (a wrong cookie) counts as a failed try.
                let ready = async {
                    loop {
                        let changed = sessions.changed.notified();
                        tokio::pin!(changed);
                        changed.as_mut().enable();
                        if sessions.ready.lock().contains(&key) {
                            return;
                        }
                        changed.await;
                    }
                };
                if tokio::time::timeout(Duration::from_secs(5), ready)
                    .await
                    .is_ok()
                {
                    backoff = BACKOFF_MIN;
                    continue;
                }
                tracing::warn!(%peer, "session with peer did not authenticate");
            }
            Err(e) => tracing::debug!(%peer, error = %e, "could not reach peer"),
        }
        // Jitter, between half and all of the backoff, from the clock's
        // nanoseconds: enough to keep many nodes from dialling in step.
        let spread = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() % 1000);
        let jittered = backoff.mul_f64(0.5 + f64::from(spread) / 2000.0);
        tokio::time::sleep(jittered).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
