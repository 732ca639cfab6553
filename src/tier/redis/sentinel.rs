//! The current primary behind Redis Sentinel, found again after a failover. redis-rs' `SentinelClient` asks the
//! sentinels for the primary and checks its `ROLE`; this keeps one multiplexed connection to it and drops that
//! connection on any sign that it is no longer the primary (I/O error, `READONLY`, a `ROLE` that is not `master`),
//! so the next call asks the sentinels again. Nothing is retried once sent: a command that may have run is the
//! caller's to judge (every write here replaces a whole value, so a failed one left the old value or the new).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
  AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Role,
  TlsCertificates, TlsMode, Value,
};

use super::config::{RedisConfig, SentinelTarget};

/// The primary in use: its connection, a number telling it from later ones, and its replicas at the last `ROLE`.
#[derive(Clone)]
pub struct Primary {
  pub conn: MultiplexedConnection,
  id: u64,
  replicas: Arc<AtomicUsize>,
}

pub struct SentinelConn {
  /// Locked while the sentinels are asked, so a failover makes one lookup, not one per waiting call.
  client: tokio::sync::Mutex<SentinelClient>,
  current: Mutex<Option<Primary>>,
  next_id: AtomicU64,
  config: AsyncConnectionConfig,
  connect_timeout: Duration,
}

/// The error a node that no longer (or not yet) is the primary gets: a failover is under way.
fn not_primary() -> RedisError {
  (ErrorKind::Io, "the node the sentinels named is not the primary (a failover is under way)").into()
}

impl SentinelConn {
  pub fn new(target: &SentinelTarget, config: &RedisConfig, root_cert: Option<Vec<u8>>) -> RedisResult<Self> {
    let addrs = target.sentinels.iter().map(|(host, port)| match target.tls {
      false => ConnectionAddr::Tcp(host.clone(), *port),
      true => {
        ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: config.tls.insecure, tls_params: None }
      }
    });
    let mut b = SentinelClientBuilder::new(addrs, &target.name, SentinelServerType::Master)?;
    b = b.set_client_to_redis_db(target.db);
    if let Some(user) = &target.username {
      b = b.set_client_to_redis_username(user);
    }
    if let Some(password) = &target.password {
      b = b.set_client_to_redis_password(password);
    }
    if let Some(user) = &target.sentinel_username {
      b = b.set_client_to_sentinel_username(user);
    }
    if let Some(password) = &target.sentinel_password {
      b = b.set_client_to_sentinel_password(password);
    }
    if target.tls {
      let mode = if config.tls.insecure { TlsMode::Insecure } else { TlsMode::Secure };
      b = b.set_client_to_redis_tls_mode(mode).set_client_to_sentinel_tls_mode(mode);
      if let Some(pem) = root_cert {
        let certs = || TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
        b = b.set_client_to_redis_certificates(certs()).set_client_to_sentinel_certificates(certs());
      }
    }
    let connection = AsyncConnectionConfig::new()
      .set_connection_timeout(Some(config.connect_timeout))
      .set_response_timeout(Some(config.command_timeout));
    Ok(Self {
      client: tokio::sync::Mutex::new(b.build()?),
      current: Mutex::new(None),
      next_id: AtomicU64::new(1),
      config: connection,
      connect_timeout: config.connect_timeout,
    })
  }

  fn cached(&self) -> Option<Primary> {
    self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
  }

  /// The connection to the current primary, asking the sentinels when there is none. Until `connect_timeout`
  /// runs out it asks again while they still name a primary that is down (nothing was sent yet, so waiting for
  /// the failover to finish is safe).
  pub async fn primary(&self) -> RedisResult<Primary> {
    if let Some(p) = self.cached() {
      return Ok(p);
    }
    let mut client = self.client.lock().await;
    if let Some(p) = self.cached() {
      return Ok(p);
    }
    let deadline = tokio::time::Instant::now() + self.connect_timeout;
    loop {
      let attempt = tokio::time::timeout_at(deadline, self.discover(&mut client)).await;
      let err = match attempt {
        Ok(Ok(p)) => {
          *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
          return Ok(p);
        }
        Ok(Err(e)) => e,
        Err(_) => return Err((ErrorKind::Io, "no primary found by the sentinels in time").into()),
      };
      // A wrong password or name will not heal by asking again.
      if matches!(err.kind(), ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig)
        || err.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
        || tokio::time::Instant::now() + Duration::from_millis(100) >= deadline
      {
        return Err(err);
      }
      tokio::time::sleep(Duration::from_millis(100)).await;
    }
  }

  async fn discover(&self, client: &mut SentinelClient) -> RedisResult<Primary> {
    let mut conn = client.get_async_connection_with_config(&self.config).await?;
    let role: Role = redis::cmd("ROLE").query_async(&mut conn).await?;
    let Role::Primary { replicas, .. } = role else { return Err(not_primary()) };
    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
    Ok(Primary { conn, id, replicas: Arc::new(AtomicUsize::new(replicas.len())) })
  }

  /// Forgets `primary` if it is still the current one and `e` says it may no longer be the primary.
  pub fn judge(&self, primary: &Primary, e: &RedisError) {
    let gone = e.is_io_error()
      || e.is_connection_dropped()
      || e.is_connection_refusal()
      || e.is_timeout()
      || e.is_unrecoverable_error()
      || e.code().is_some_and(|c| matches!(c, "READONLY" | "LOADING" | "MASTERDOWN" | "NOREPLICAS"));
    if gone {
      let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
      if current.as_ref().is_some_and(|c| c.id == primary.id) {
        *current = None;
      }
    }
  }

  /// Runs `cmd` on the primary with a `ROLE` behind it in the same round trip: an answer counts only if the node
  /// still called itself the primary when it gave it (a demoted node would answer reads from stale data). With
  /// `wait`, a `WAIT <replicas> <ms>` follows the command: `None` means the default (1 while the primary has a
  /// replica). Returns the reply and, with a wait, `(replicas that acknowledged, replicas wanted)`.
  pub async fn query<T: FromRedisValue>(
    &self,
    cmd: &Cmd,
    wait: Option<(Option<u32>, Duration)>,
  ) -> RedisResult<(T, Option<(i64, u32)>)> {
    let primary = self.primary().await?;
    let result = self.run(&primary, cmd, wait).await;
    if let Err(e) = &result {
      self.judge(&primary, e);
    }
    result
  }

  async fn run<T: FromRedisValue>(
    &self,
    primary: &Primary,
    cmd: &Cmd,
    wait: Option<(Option<u32>, Duration)>,
  ) -> RedisResult<(T, Option<(i64, u32)>)> {
    let wanted = wait.map(|(n, timeout)| {
      let n = n.unwrap_or_else(|| primary.replicas.load(Ordering::Relaxed).min(1) as u32);
      (n, timeout)
    });
    let mut pipe = Pipeline::new();
    pipe.add_command(cmd.clone()).cmd("ROLE");
    if let Some((n, timeout)) = wanted.filter(|(n, _)| *n > 0) {
      pipe.cmd("WAIT").arg(n).arg(timeout.as_millis().max(1) as u64);
    }
    let mut conn = primary.conn.clone();
    let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
    let acked = match wanted {
      Some((n, _)) if n > 0 => Some((redis::from_redis_value::<i64>(replies.pop().unwrap_or(Value::Nil))?, n)),
      Some((n, _)) => Some((0, n)),
      None => None,
    };
    let role: Role = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    let Role::Primary { replicas, .. } = role else { return Err(not_primary()) };
    primary.replicas.store(replicas.len(), Ordering::Relaxed);
    let value = redis::from_redis_value(replies.pop().unwrap_or(Value::Nil))?;
    Ok((value, acked))
  }

  /// Checks, after a walk of several commands on `primary` (SCAN, INFO), that it was the primary throughout as far
  /// as a final `ROLE` can tell.
  pub async fn still_primary(&self, primary: &Primary) -> RedisResult<()> {
    let mut conn = primary.conn.clone();
    let role: RedisResult<Role> = redis::cmd("ROLE").query_async(&mut conn).await;
    let result = match role {
      Ok(Role::Primary { .. }) => Ok(()),
      Ok(_) => Err(not_primary()),
      Err(e) => Err(e),
    };
    if let Err(e) = &result {
      self.judge(primary, e);
    }
    result
  }
}
