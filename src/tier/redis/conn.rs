//! One multiplexed, self-healing connection: redis-rs' ConnectionManager for a single server, its
//! ClusterConnection for a cluster, the primary the sentinels name for Sentinel (sentinel.rs). All reconnect on
//! their own after an outage; Sentinel finds the new primary after a failover.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, TlsCertificates, Value};

use super::config::{with_insecure, RedisConfig, RedisTarget};
use super::sentinel::SentinelConn;

#[derive(Clone)]
pub enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Sentinel(Arc<SentinelConn>),
}

/// How many replicas a write must reach before it counts (`WAIT`), and for how long to wait for them.
#[derive(Clone, Copy, Debug)]
pub struct Durability {
  /// `None`: the connection's default (Sentinel: 1 while the primary has a replica; otherwise 0).
  pub replicas: Option<u32>,
  pub timeout: Duration,
}

/// A write's reply, and `(acknowledged, wanted)` replicas when it waited for any.
pub struct Written<T> {
  pub value: T,
  pub replicas: Option<(i64, u32)>,
}

/// rustls needs a process-wide crypto provider; ring is the one this crate builds with.
fn install_crypto_provider() {
  static ONCE: std::sync::Once = std::sync::Once::new();
  ONCE.call_once(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
  });
}

fn urls(config: &RedisConfig) -> Vec<String> {
  let urls = match &config.target {
    RedisTarget::Single(url) => vec![url.clone()],
    RedisTarget::Cluster(nodes) => nodes.clone(),
    RedisTarget::Sentinel(_) => return Vec::new(),
  };
  if config.tls.insecure {
    urls.iter().map(|u| with_insecure(u)).collect()
  } else {
    urls
  }
}

pub async fn connect(config: &RedisConfig, root_cert: Option<Vec<u8>>) -> RedisResult<Conn> {
  install_crypto_provider();
  let urls = urls(config);
  let certs = root_cert.map(|pem| TlsCertificates { client_tls: None, root_cert: Some(pem) });
  match &config.target {
    RedisTarget::Single(_) => {
      let url = urls[0].as_str();
      let client = match certs {
        Some(certs) => redis::Client::build_with_tls(url, certs)?,
        None => redis::Client::open(url)?,
      };
      let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
      let manager = ConnectionManager::new_lazy_with_config(client, manager)?;
      first_answer(&manager, config.connect_timeout).await?;
      Ok(Conn::Single(manager))
    }
    RedisTarget::Cluster(_) => {
      let mut builder = ClusterClientBuilder::new(urls)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout);
      if let Some(certs) = certs {
        builder = builder.certs(certs);
      }
      Ok(Conn::Cluster(builder.build()?.get_async_connection().await?))
    }
    RedisTarget::Sentinel(target) => {
      let conn = SentinelConn::new(target, config, root_cert_of(certs))?;
      // The first lookup now, so a wrong name or password shows at the first call, not later.
      conn.primary().await?;
      Ok(Conn::Sentinel(Arc::new(conn)))
    }
  }
}

/// The first round trip (TCP, TLS, login, one `PING`) within `connect_timeout` as a whole: the manager's own
/// timeouts apply per attempt and it retries, so a server that accepts and never answers took several times the
/// timeout to fail. A `NOPERM` answer (an ACL user without `PING`) is an answer.
async fn first_answer(manager: &ConnectionManager, connect_timeout: Duration) -> RedisResult<()> {
  let mut probe = manager.clone();
  match tokio::time::timeout(connect_timeout, redis::cmd("PING").query_async::<Value>(&mut probe)).await {
    Ok(Ok(_)) => Ok(()),
    Ok(Err(e)) if e.code() == Some("NOPERM") => Ok(()),
    Ok(Err(e)) => Err(e),
    Err(_) => Err(
      std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within connectTimeoutMs ({} ms) to connect, log in and PING", connect_timeout.as_millis()),
      )
      .into(),
    ),
  }
}

fn root_cert_of(certs: Option<TlsCertificates>) -> Option<Vec<u8>> {
  certs.and_then(|c| c.root_cert)
}

impl Conn {
  pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
    match self.clone() {
      Conn::Single(mut c) => cmd.query_async(&mut c).await,
      Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
      Conn::Sentinel(s) => Ok(s.query(cmd, None).await?.0),
    }
  }

  /// `cmd`, a write, followed by `WAIT` in the same round trip when `durability` asks for replicas (a cluster
  /// never does: the settings refuse it).
  pub async fn write<T: FromRedisValue>(&self, cmd: &Cmd, durability: Durability) -> RedisResult<Written<T>> {
    let timeout = durability.timeout;
    match self.clone() {
      Conn::Sentinel(s) => {
        let (value, replicas) = s.query(cmd, Some((durability.replicas, timeout))).await?;
        Ok(Written { value, replicas })
      }
      Conn::Single(mut c) if durability.replicas.is_some_and(|n| n > 0) => {
        let n = durability.replicas.unwrap_or(0);
        let mut pipe = Pipeline::new();
        pipe.add_command(cmd.clone()).cmd("WAIT").arg(n).arg(timeout.as_millis().max(1) as u64);
        let (value, acked): (T, i64) = pipe.query_async(&mut c).await?;
        Ok(Written { value, replicas: Some((acked, n)) })
      }
      conn => Ok(Written { value: conn.query(cmd).await?, replicas: None }),
    }
  }

  /// Every key matching `pattern`, by SCAN on the server or on each primary of the cluster.
  pub async fn scan(&self, pattern: &str) -> RedisResult<Vec<String>> {
    match self.clone() {
      Conn::Single(mut c) => scan_node(pattern, Node::Single(&mut c)).await,
      Conn::Cluster(mut c) => {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await?;
        let mut keys = Vec::new();
        for (host, port) in primaries(&nodes)? {
          let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
          keys.extend(scan_node(pattern, Node::Routed(&mut c, route)).await?);
        }
        Ok(keys)
      }
      Conn::Sentinel(s) => {
        let primary = s.primary().await?;
        let mut conn = primary.conn.clone();
        let keys = scan_node(pattern, Node::Plain(&mut conn)).await;
        if let Err(e) = &keys {
          s.judge(&primary, e);
        }
        s.still_primary(&primary).await?;
        keys
      }
    }
  }
}

impl Conn {
  /// `INFO <section>` of the server, or of each primary of the cluster.
  pub async fn info(&self, section: &str) -> RedisResult<Vec<String>> {
    match self.clone() {
      Conn::Single(mut c) => Ok(vec![redis::cmd("INFO").arg(section).query_async(&mut c).await?]),
      Conn::Cluster(mut c) => {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await?;
        let mut out = Vec::new();
        for (host, port) in primaries(&nodes)? {
          let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
          let mut cmd = redis::cmd("INFO");
          cmd.arg(section);
          out.push(redis::from_redis_value(Node::Routed(&mut c, route).run(cmd).await?)?);
        }
        Ok(out)
      }
      Conn::Sentinel(s) => Ok(vec![s.query(redis::cmd("INFO").arg(section), None).await?.0]),
    }
  }
}

/// Where one SCAN walk runs: the single server, or one node of the cluster.
enum Node<'a> {
  Single(&'a mut ConnectionManager),
  Plain(&'a mut MultiplexedConnection),
  Routed(&'a mut ClusterConnection, RoutingInfo),
}

impl Node<'_> {
  async fn run(&mut self, cmd: Cmd) -> RedisResult<Value> {
    match self {
      Node::Single(c) => cmd.query_async(*c).await,
      Node::Plain(c) => cmd.query_async(*c).await,
      Node::Routed(c, route) => c.route_command(cmd, route.clone()).await,
    }
  }
}

async fn scan_node(pattern: &str, mut node: Node<'_>) -> RedisResult<Vec<String>> {
  let mut keys = Vec::new();
  let mut cursor: u64 = 0;
  loop {
    let mut cmd = redis::cmd("SCAN");
    // 2,000 slots a call (well under a millisecond of Redis' time): a fleet worker lists the keyspace every round,
    // four keys per session, and these pages were most of its commands at rest at 3,000 sessions.
    cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(2000);
    let (next, batch): (u64, Vec<String>) = redis::from_redis_value(node.run(cmd).await?)?;
    keys.extend(batch);
    if next == 0 {
      return Ok(keys);
    }
    cursor = next;
  }
}

/// `host:port` of the primaries in `CLUSTER NODES` output. A failing primary is an error: listing the others
/// alone would pass a partial answer off as the whole.
fn primaries(nodes: &str) -> RedisResult<Vec<(String, u16)>> {
  let mut out = Vec::new();
  for line in nodes.lines() {
    let mut fields = line.split_whitespace();
    let (Some(addr), Some(flags)) = (fields.nth(1), fields.next()) else { continue };
    if !flags.split(',').any(|f| f == "master") || flags.contains("noaddr") {
      continue;
    }
    if flags.contains("fail") {
      return Err((redis::ErrorKind::ClusterConnectionNotFound, "a cluster primary is failing").into());
    }
    let hostport = addr.split('@').next().unwrap_or(addr);
    if let Some((host, port)) = hostport.rsplit_once(':') {
      if let (false, Ok(port)) = (host.is_empty(), port.parse()) {
        out.push((host.to_owned(), port));
      }
    }
  }
  Ok(out)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn primaries_come_from_cluster_nodes() {
    let out = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 1 2 connected 5461-10922
d4 127.0.0.1:7003@17003 slave a1 0 1 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected";
    assert_eq!(primaries(out).unwrap(), vec![("127.0.0.1".to_string(), 7000), ("127.0.0.1".to_string(), 7001)]);
    let failing = format!("{out}\nc3 127.0.0.1:7002@17002 master,fail? - 0 1 3 connected");
    assert!(primaries(&failing).is_err());
  }
}
