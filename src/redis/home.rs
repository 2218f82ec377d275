//! Where the tier's keys live: the one server, or, in a cluster, the
//! master of the tier's slot, found through the nodes the tier was given.
//!
//! In a cluster every key of the tier shares one hash tag (`keys`), so one
//! master serves them all, the revocation counter included: the tier
//! connects to that node only, commands and subscription alike. To find
//! it, the tier reads the revocation counter on each given node in turn
//! (starting with the last one that answered): the master answers, any
//! other node answers `MOVED slot host:port`, naming the master, which the
//! tier then connects to, with the same credentials and TLS settings. A
//! node that stops serving the slot later (a failover, a resharding)
//! answers `MOVED` (or `CLUSTERDOWN`, `READONLY`…) to the next call or
//! liveness check: the tier reconnects and looks for the master again.

use std::sync::atomic::Ordering;

use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, ServerErrorKind,
};

use super::state::{Failure, State, Target};

impl State {
    /// A command connection to the server holding the tier's keys, and
    /// the client it came from (for the subscription, on the same server).
    pub(super) async fn open_home(&self) -> Result<(Client, MultiplexedConnection), Failure> {
        let nodes = match &self.target {
            Target::Single(client) => {
                let conn = self.open(client).await?;
                return Ok((Client::clone(client), conn));
            }
            Target::Cluster(nodes) => nodes,
        };
        let first = self.next_node.load(Ordering::Relaxed);
        let mut last = Failure::NotConnected;
        for i in 0..nodes.len() {
            let n = (first + i) % nodes.len();
            match self.master_through(&nodes[n]).await {
                Ok(home) => {
                    self.next_node.store(n, Ordering::Relaxed);
                    return Ok(home);
                }
                Err(failure) => last = failure,
            }
        }
        Err(last)
    }

    /// The master of the tier's slot, asked of `node`: `node` itself if it
    /// serves the slot, or the node its `MOVED` answer names, which must
    /// serve it.
    async fn master_through(
        &self,
        node: &ConnectionInfo,
    ) -> Result<(Client, MultiplexedConnection), Failure> {
        let client = Client::open(node.clone()).map_err(Failure::Redis)?;
        let mut conn = self.open(&client).await?;
        let moved = match self.read_gen(&mut conn).await {
            Ok(_) => return Ok((client, conn)),
            Err(Failure::Redis(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::Moved) => e,
            Err(failure) => return Err(failure),
        };
        let master = moved
            .redirect_node()
            .and_then(|(addr, _slot)| redirected(node, addr))
            .ok_or(Failure::Unreadable)?;
        let client = Client::open(master).map_err(Failure::Redis)?;
        let mut conn = self.open(&client).await?;
        self.read_gen(&mut conn).await?;
        Ok((client, conn))
    }

    /// A command connection to `client`'s server, bounded.
    async fn open(&self, client: &Client) -> Result<MultiplexedConnection, Failure> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout));
        self.bounded(client.get_multiplexed_async_connection_with_config(&config))
            .await
    }

    /// The revocation counter in Redis (0 if there is none yet).
    pub(super) async fn read_gen(&self, conn: &mut MultiplexedConnection) -> Result<u64, Failure> {
        let gen: Option<u64> = self
            .bounded(::redis::cmd("GET").arg(self.keys.gen()).query_async(conn))
            .await?;
        Ok(gen.unwrap_or(0))
    }
}

/// `node`'s connection settings (credentials, TLS) for the node at `addr`
/// (`host:port` from a `MOVED` answer; an empty host is `node`'s own).
/// `None` for an address Redis does not know (`?`) or cannot be read.
fn redirected(node: &ConnectionInfo, addr: &str) -> Option<ConnectionInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host == "?" {
        return None;
    }
    let mut to = node.addr().clone();
    match &mut to {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            if !host.is_empty() {
                *h = host.to_owned();
            }
            *p = port;
        }
        // A Unix socket is no cluster node.
        _ => return None,
    }
    Some(node.clone().set_addr(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redis::IntoConnectionInfo;

    #[test]
    fn a_moved_address_keeps_the_nodes_credentials_and_tls() {
        let node = "rediss://:hunter2@10.0.0.1:6380/"
            .into_connection_info()
            .unwrap();
        let to = redirected(&node, "10.0.0.7:7001").unwrap();
        assert!(matches!(
            to.addr(),
            ConnectionAddr::TcpTls { host, port: 7001, .. } if host == "10.0.0.7"
        ));
        assert_eq!(to.redis_settings().password(), Some("hunter2"));
        let to = redirected(&node, ":7002").unwrap();
        assert!(matches!(
            to.addr(),
            ConnectionAddr::TcpTls { host, port: 7002, .. } if host == "10.0.0.1"
        ));
        let plain = "redis://10.0.0.1:6379/".into_connection_info().unwrap();
        let to = redirected(&plain, "::1:7003").unwrap();
        assert!(matches!(to.addr(), ConnectionAddr::Tcp(host, 7003) if host == "::1"));
        for bad in ["?:7001", "10.0.0.7", "10.0.0.7:port", ""] {
            assert!(redirected(&node, bad).is_none(), "{bad}");
        }
    }
}
