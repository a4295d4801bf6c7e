//! A node's settings as a command line gives them — strings and optional
//! files — checked and resolved into a [`NodeConfig`] and a list of peers,
//! once for every binary that starts a node (`corral node`, `corral serve
//! --cluster`, `corral-bench node`). The flags' names appear in the errors,
//! so a user is told which one to fix.
//!
//! With the `cli` feature, the flags those binaries share under the same
//! names are clap arguments here too ([`NodeArgs`], flattened into each
//! binary's own), beside the future that ends a node ([`shutdown_signal`]).
//! The name, listening address and port stay each binary's: `corral serve`
//! calls them `--cluster-host` and `--cluster-port`, since its `--host` and
//! `--port` are the HTTP front's.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::node::{NodeConfig, NodeError, TlsConfig};

/// Environment variable holding the cookie when `--cookie` is absent.
pub const COOKIE_ENV: &str = "CORRAL_COOKIE";

/// A node's flags, unchecked.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags {
    /// `--name`: the node's name, unique in the cluster.
    pub name: String,
    /// `--host`: the address to listen on (only there), an IP address or a
    /// name that resolves to one; also the name peers reach it by, unless
    /// `advertise`.
    pub host: String,
    /// `--advertise`: the host name peers reach the node by, when it is
    /// not `host`.
    pub advertise: Option<String>,
    /// `--port`.
    pub port: u16,
    /// `--cookie`; [`COOKIE_ENV`] when absent. Required.
    pub cookie: Option<String>,
    /// `--peer host:port`, each to keep connected.
    pub peers: Vec<String>,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`: all three, or none.
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_ca: Option<PathBuf>,
    /// `--tls-server-name`: the name peers' certificates carry.
    pub tls_server_name: String,
}

impl NodeFlags {
    /// The node's configuration: the cookie (from the flag or
    /// [`COOKIE_ENV`]), `host` resolved to the address to listen on, the
    /// advertised name, and the TLS material read from its files.
    ///
    /// # Errors
    /// No cookie; a `host` that does not resolve; TLS files given only in
    /// part, or unreadable.
    pub fn config(&self) -> Result<NodeConfig, NodeError> {
        let cookie = self
            .cookie
            .clone()
            .or_else(|| std::env::var(COOKIE_ENV).ok())
            .unwrap_or_default();
        if cookie.is_empty() {
            return Err(NodeError::NoCookie);
        }
        let listen: IpAddr = resolve(&self.host, self.port)
            .map_err(|e| NodeError::Listen(format!("--host {}: {e}", self.host)))?
            .ip();
        let advertise = self.advertise.clone().unwrap_or_else(|| self.host.clone());
        let mut config = NodeConfig::new(self.name.clone(), advertise, self.port, cookie);
        config.listen = Some(listen);
        config.tls = match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(c), Some(k), Some(ca)) => Some(TlsConfig::from_pem_files(
                c,
                k,
                ca,
                self.tls_server_name.clone(),
            )?),
            (None, None, None) => None,
            _ => {
                return Err(NodeError::Tls(
                    "--tls-cert, --tls-key and --tls-ca go together".to_owned(),
                ))
            }
        };
        Ok(config)
    }

    /// The peers, each resolved to one address.
    ///
    /// # Errors
    /// A peer that is not `host:port` or does not resolve.
    pub fn peers(&self) -> Result<Vec<SocketAddr>, NodeError> {
        self.peers
            .iter()
            .map(|p| {
                p.to_socket_addrs()
                    .map_err(|e| e.to_string())
                    .and_then(|mut a| a.next().ok_or_else(|| "no address".to_owned()))
                    .map_err(|e| NodeError::Peer(format!("--peer {p}: {e}")))
            })
            .collect()
    }
}

/// The node flags every binary that starts a node takes under the same
/// names: `--advertise`, `--cookie`, `--peer`, and the TLS files. Flatten
/// it into a binary's clap arguments and make the [`NodeFlags`] with
/// [`NodeArgs::flags`].
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Host name peers reach this node by, when it is not the address it
    /// listens on (for example node1.example beside 0.0.0.0).
    #[arg(long)]
    pub advertise: Option<String>,
    /// The cluster's shared secret (default: $CORRAL_COOKIE; required).
    #[arg(long)]
    pub cookie: Option<String>,
    /// A peer to keep connected, `host:port` (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// This node's TLS certificate chain (PEM); with --tls-key and
    /// --tls-ca, nodes talk over mutual TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// This node's TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The CA that signs the cluster's node certificates (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The name peers' certificates carry.
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
}

#[cfg(feature = "cli")]
impl NodeArgs {
    /// The node's flags: these, with its `name`, the `host` it listens on
    /// and its `port`.
    pub fn flags(&self, name: String, host: String, port: u16) -> NodeFlags {
        NodeFlags {
            name,
            host,
            advertise: self.advertise.clone(),
            port,
            cookie: self.cookie.clone(),
            peers: self.peers.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_server_name: self.tls_server_name.clone(),
        }
    }

    /// The flags given among those that need a node (all but
    /// `--tls-server-name`, which has a default), by name: for a binary
    /// that starts a node only when told to (`corral serve` without
    /// `--cluster` refuses them).
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--advertise", self.advertise.is_some()),
            ("--cookie", self.cookie.is_some()),
            ("--peer", !self.peers.is_empty()),
            ("--tls-cert", self.tls_cert.is_some()),
            ("--tls-key", self.tls_key.is_some()),
            ("--tls-ca", self.tls_ca.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT), saying which in the log: how
/// every binary that starts a node is stopped.
#[cfg(feature = "cli")]
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// The first address `host` resolves to.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> NodeFlags {
        NodeFlags {
            name: "a".into(),
            host: "127.0.0.1".into(),
            port: 4697,
            cookie: Some("c".into()),
            ..NodeFlags::default()
        }
    }

    #[test]
    fn flags_resolve_into_a_config() {
        let c = flags().config().unwrap();
        assert_eq!(c.listen, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 4697));
        let c = NodeFlags {
            advertise: Some("node1.example".into()),
            ..flags()
        }
        .config()
        .unwrap();
        assert_eq!(c.host, "node1.example");
        assert_eq!(c.listen, Some(IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let e = NodeFlags {
            tls_cert: Some("x.pem".into()),
            ..flags()
        }
        .config()
        .unwrap_err();
        assert!(
            e.to_string().contains("--tls-cert, --tls-key and --tls-ca"),
            "{e}"
        );
        let e = NodeFlags {
            host: "no such host.invalid".into(),
            ..flags()
        }
        .config()
        .unwrap_err();
        assert!(e.to_string().contains("--host"), "{e}");
        let e = NodeFlags {
            peers: vec!["127.0.0.1".into()],
            ..flags()
        }
        .peers()
        .unwrap_err();
        assert!(e.to_string().contains("--peer 127.0.0.1"), "{e}");
        assert_eq!(
            NodeFlags {
                peers: vec!["127.0.0.1:7".into()],
                ..flags()
            }
            .peers()
            .unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], 7))]
        );
    }
}
