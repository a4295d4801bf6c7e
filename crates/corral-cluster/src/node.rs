//! [`Node`]: a ractor_cluster node server with the two things ractor_cluster
//! leaves to its users — staying connected to peers (it never reconnects by
//! itself) and TLS set up from PEM files.
//!
//! [`Node::connect`] keeps one peer connected for as long as the node
//! lives: a task per peer dials it, waits for the session to authenticate,
//! and after any disconnect (or a failed dial, or a session closed by the
//! handshake — a wrong cookie looks like that) dials again, backing off
//! from 100 ms to 5 s with jitter (after a disconnect, 50–100 ms first). A session counts for a peer whichever
//! side opened it: sessions are known by the node at their other end (its
//! name and the address it advertises), not by their TCP address, so two
//! nodes that list each other as peers keep one session and never redial.
//! The cookie is required: ractor_cluster checks it in its handshake and
//! closes any session that does not know it.
//!
//! A node listens only where it is told ([`NodeConfig::host`], or
//! [`NodeConfig::listen`]) — ractor_cluster's own default is every
//! interface — and sets ractor_cluster's inbound frame limit from the wire
//! limit ([`NodeConfig::max_frame`] plus [`wire::ENVELOPE`]), since
//! ractor_cluster closes a whole session over one frame past it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeId, NodeServer, NodeServerMessage,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::Notify;

use crate::wire::{self, Limits};

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
    /// The host name peers reach it by (sent to them in the handshake).
    /// Unless `listen` says otherwise, it is also the only address the
    /// node listens on: `host` itself when it is an IP address, else the
    /// first address it resolves to.
    pub host: String,
    /// The address to listen on when it is not `host`'s (for example
    /// `0.0.0.0`, advertising a name that routes to this machine).
    pub listen: Option<IpAddr>,
    /// The port it listens on.
    pub port: u16,
    /// The shared secret every node of the cluster must have.
    pub cookie: String,
    /// TLS between nodes, if any; all nodes of a cluster must agree.
    pub tls: Option<TlsConfig>,
    /// The largest wire frame its members and routers exchange (their
    /// [`Limits::max_frame`]): the node accepts inbound cluster frames of
    /// up to this plus [`wire::ENVELOPE`], and no larger — ractor_cluster
    /// answers a larger one by closing the session. Default: the wire's
    /// default, 64 MiB.
    pub max_frame: usize,
}

impl NodeConfig {
    /// A node named `name`, reached at and listening on `host:port`, with
    /// `cookie`, no TLS and the wire's default frame limit.
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        cookie: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            host: host.into(),
            listen: None,
            port,
            cookie: cookie.into(),
            tls: None,
            max_frame: Limits::default().max_frame,
        }
    }

    /// The address to listen on: `listen`, else `host` (resolved if it is
    /// a name).
    async fn listen_addr(&self) -> Result<IpAddr, NodeError> {
        if let Some(ip) = self.listen {
            return Ok(ip);
        }
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        tokio::net::lookup_host((host, self.port))
            .await
            .map_err(|e| NodeError::Listen(format!("{}: {e}", self.host)))?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| NodeError::Listen(format!("{}: no address", self.host)))
    }
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
    /// The host to listen on does not resolve.
    #[error("no address to listen on: {0}")]
    Listen(String),
    /// A peer's address does not resolve.
    #[error("no address for a peer: {0}")]
    Peer(String),
    /// ractor could not spawn the node server.
    #[error("could not start the node server: {0}")]
    Spawn(String),
}

/// A session that is up, as [`Node::sessions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The peer node's name (`name@host`, as ractor_cluster forms it).
    pub name: String,
    /// The peer's TCP address on this session (for a session the peer
    /// opened, its ephemeral source port).
    pub address: String,
    /// The `host:port` the peer says it is reached at.
    pub advertised: String,
    /// Whether the peer opened it.
    pub inbound: bool,
}

impl SessionInfo {
    /// Whether this is a session with the node reached at `peer`, judged
    /// from what the session itself says (the learned names are the
    /// caller's).
    fn reaches(&self, peer: SocketAddr) -> bool {
        self.address.parse::<SocketAddr>().ok() == Some(peer)
            || self.advertised.parse::<SocketAddr>().ok() == Some(peer)
    }
}

/// Sessions that are ready, by ractor_cluster's session id, the node names
/// learned for the addresses this node dials, and a signal when either
/// changes.
///
/// A session is recognised by the node at its other end, not by its TCP
/// address: a session the peer opened comes from an ephemeral port, so
/// "connected to `peer`" means a ready session whose TCP address or
/// advertised address is `peer`, or whose node name was seen at `peer`
/// before.
#[derive(Default)]
struct Sessions {
    ready: Mutex<HashMap<NodeId, SessionInfo>>,
    names: Mutex<HashMap<SocketAddr, String>>,
    changed: Notify,
}

impl Sessions {
    /// Whether a ready session is with the node at `peer`, from what is
    /// known now (no name resolution).
    fn connected(&self, peer: SocketAddr) -> bool {
        let ready = self.ready.lock();
        if let Some(s) = ready.values().find(|s| s.reaches(peer)) {
            let name = s.name.clone();
            drop(ready);
            self.names.lock().insert(peer, name);
            return true;
        }
        let names = self.names.lock();
        let name = names.get(&peer);
        name.is_some_and(|n| ready.values().any(|s| &s.name == n))
    }

    /// As [`Sessions::connected`], also resolving advertised host names
    /// (a peer that advertises `localhost:4701` is the one dialled at
    /// `127.0.0.1:4701`).
    async fn connected_resolving(&self, peer: SocketAddr) -> bool {
        if self.connected(peer) {
            return true;
        }
        let named: Vec<SessionInfo> = self
            .ready
            .lock()
            .values()
            .filter(|s| s.advertised.parse::<SocketAddr>().is_err())
            .cloned()
            .collect();
        for s in named {
            let Ok(mut addrs) = tokio::net::lookup_host(s.advertised.as_str()).await else {
                continue;
            };
            if addrs.any(|a| a == peer) {
                self.names.lock().insert(peer, s.name);
                return self.connected(peer);
            }
        }
        false
    }
}

struct Events(Arc<Sessions>);

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        match self.0.ready.lock().remove(&ses.node_id) {
            Some(s) => tracing::info!(peer = %s.name, address = %s.address, "node session closed"),
            None => {
                tracing::debug!(address = %ses.peer_addr, "node session closed before it was ready")
            }
        }
        self.0.changed.notify_waiters();
    }

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let (name, advertised) = ses.peer_name.as_ref().map_or_else(
            || (ses.peer_addr.clone(), String::new()),
            |n| (n.name.clone(), n.connection_string.clone()),
        );
        let info = SessionInfo {
            name,
            address: ses.peer_addr.clone(),
            advertised,
            inbound: ses.is_server,
        };
        tracing::info!(peer = %info.name, address = %info.address, advertised = %info.advertised, "node session ready");
        self.0.ready.lock().insert(ses.node_id, info);
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
        let listen = config.listen_addr().await?;
        let inbound_limit = config.max_frame.saturating_add(wire::ENVELOPE);
        let server = NodeServer::new(
            config.port,
            config.cookie,
            config.name,
            config.host,
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen)
        .with_max_inbound_frame_size(u64::try_from(inbound_limit).unwrap_or(u64::MAX));
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

    /// Whether a session with the node at `peer` is up and authenticated,
    /// whichever side opened it (see [`SessionInfo`] for how a session is
    /// matched to an address).
    pub fn is_connected(&self, peer: SocketAddr) -> bool {
        self.sessions.connected(peer)
    }

    /// The sessions that are up, one per peer node.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions.ready.lock().values().cloned().collect()
    }

    /// Waits until a session with the node at `peer` is up, or `timeout`.
    pub async fn wait_connected(&self, peer: SocketAddr, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.sessions.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.sessions.connected_resolving(peer).await {
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
    let mut backoff = BACKOFF_MIN;
    loop {
        // Connected (by a session either side opened): wait for it to go.
        let mut was_connected = false;
        loop {
            let changed = sessions.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !sessions.connected_resolving(peer).await {
                break;
            }
            if !was_connected {
                tracing::info!(%peer, "peer connected");
                was_connected = true;
            }
            changed.await;
        }
        if was_connected {
            tracing::info!(%peer, "peer lost");
            // A session lost the moment another came up is ractor_cluster
            // settling two nodes' simultaneous dials: let it settle (and
            // the two keepers fall out of step) before dialling again.
            tokio::time::sleep(jittered(BACKOFF_MIN)).await;
            if sessions.connected_resolving(peer).await {
                continue;
            }
        }
        tracing::debug!(%peer, "dialling peer");
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
                        if sessions.connected_resolving(peer).await {
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
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Between half and all of `backoff`, from the clock's nanoseconds: enough
/// to keep many nodes from dialling in step.
fn jittered(backoff: Duration) -> Duration {
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1000);
    backoff.mul_f64(0.5 + f64::from(spread) / 2000.0)
}
