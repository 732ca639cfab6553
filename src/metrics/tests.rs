//! The exposition against a real store over the embedded tier and an in-memory bucket.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::archive::PackOptions;
use crate::backup::{Backups, Retention};
use crate::session::SessionKey;
use crate::store::{BackupMode, StoreConfig};
use crate::tier::memory::Memory;
use crate::tier::{LocalDirTier, Tier};

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
  let line = text.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))?;
  line[series.len() + 1..].parse().ok()
}

fn write_zip(path: &Path, body: &[u8]) {
  let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
  zip.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
  zip.write_all(body).unwrap();
  zip.finish().unwrap();
}

struct Fixture {
  dir: tempfile::TempDir,
  primary: Arc<LocalDirTier>,
  bucket: Arc<Memory>,
  exporter: Exporter,
}

fn fixture() -> Fixture {
  let dir = tempfile::tempdir().unwrap();
  let primary = Arc::new(LocalDirTier::open(dir.path().join("store")).unwrap());
  let bucket = Arc::new(Memory::default());
  let backups = Backups::open(bucket.clone(), Retention::default(), false, PackOptions::default());
  let config = StoreConfig { data_path: dir.path().join("auth"), pack: PackOptions::default(), local_dir: None };
  std::fs::create_dir_all(&config.data_path).unwrap();
  let mode = BackupMode::EverySave(Arc::new(|_, _| {}));
  let store = Store::new(Some(primary.clone() as Arc<dyn Tier>), Some((backups, mode)), config).unwrap();
  Fixture { dir, primary, bucket, exporter: Exporter { store, min_free_bytes: 123 } }
}

impl Fixture {
  async fn save(&self, session: &str) -> Result<crate::store::Saved> {
    write_zip(&self.dir.path().join(format!("auth/{session}.zip")), session.as_bytes());
    self.exporter.store.save(session, None).await
  }
}

#[test]
fn labels_are_escaped_and_every_family_has_help_and_type() {
  let mut f = Families::default();
  f.gauge("x_bytes", "A \\ help\nline.", &[("session", "a\"b\\c\nd")], 2.0).unwrap();
  f.counter("y_total", "Counted elsewhere.", &[], 5.0).unwrap();
  let text = f.encode(Vec::new()).unwrap();
  assert!(text.contains("x_bytes{session=\"a\\\"b\\\\c\\nd\"} 2\n"), "{text}");
  assert!(text.contains("# HELP x_bytes A \\\\ help\\nline.\n# TYPE x_bytes gauge\n"), "{text}");
  assert!(text.contains("# TYPE y_total counter\ny_total 5\n"), "{text}");
  assert!(f.gauge("bad name", "x", &[], 1.0).is_err(), "an invalid name is an error, not a panic");
}

#[tokio::test]
async fn counts_saves_backups_and_fallbacks_where_they_happen() {
  let f = fixture();
  for n in 0..3 {
    f.save(&format!("RemoteAuth-s{n}")).await.unwrap();
  }
  assert_eq!(f.exporter.store.save("RemoteAuth-nozip", None).await.unwrap_err().code(), "ERR_ZIP_NOT_FOUND");
  *f.bucket.fail_puts.lock().unwrap() = true;
  let saved = f.save("RemoteAuth-s0").await.unwrap();
  assert!(saved.backup_error.is_some(), "the bucket refused the backup");
  *f.bucket.fail_puts.lock().unwrap() = false;
  // The primary loses a session: the next read comes from the bucket.
  f.primary.delete(&SessionKey::parse("RemoteAuth-s1").unwrap()).await.unwrap();
  f.exporter.store.extract("RemoteAuth-s1", &f.dir.path().join("out.zip")).await.unwrap();

  let text = f.exporter.render().await.unwrap();
  assert_eq!(sample(&text, "wwebjs_rust_store_saves_total{result=\"ok\"}"), Some(4.0), "{text}");
  assert_eq!(sample(&text, "wwebjs_rust_store_saves_total{result=\"failed\"}"), Some(1.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_backups_total{result=\"ok\"}"), Some(3.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_backups_total{result=\"failed\"}"), Some(1.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_restore_fallbacks_total{reason=\"missing\"}"), Some(1.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_restore_fallbacks_total{reason=\"damaged\"}"), Some(0.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_leases_lost_total"), Some(0.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_up"), Some(1.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_tier_up{role=\"primary\",tier=\"dir\"}"), Some(1.0), "{text}");
  assert_eq!(sample(&text, "wwebjs_rust_store_tier_up{role=\"backup\",tier=\"memory\"}"), Some(1.0), "{text}");
  assert_eq!(sample(&text, "wwebjs_rust_store_disk_min_free_bytes"), Some(123.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_backup_interval_seconds"), Some(0.0));
  assert_eq!(sample(&text, "wwebjs_rust_store_sessions"), Some(3.0));
  let version = format!("wwebjs_rust_store_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
  assert_eq!(sample(&text, &version), Some(1.0));
  // Each backed-up session's newest version time, in seconds: within the last minute.
  let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
  let at = sample(&text, "wwebjs_rust_store_session_last_backup_timestamp_seconds{session=\"RemoteAuth-s2\"}");
  assert!(at.is_some_and(|at| at <= now && at > now - 60.0), "{at:?}");
}

#[tokio::test]
async fn names_follow_the_conventions() {
  let f = fixture();
  f.save("RemoteAuth-a").await.unwrap();
  let text = f.exporter.render().await.unwrap();
  let mut families = 0;
  for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
    let (name, kind) = line.split_once(' ').unwrap();
    families += 1;
    assert!(name.starts_with("wwebjs_rust_store_"), "{name}");
    assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
    assert_eq!(name.ends_with("_total"), kind == "counter", "{name} is a {kind}");
    assert!(text.contains(&format!("# HELP {name} ")), "{name} has no help");
    for unit in ["_ms", "_kb", "_mb", "_minutes", "_milliseconds"] {
      assert!(!name.contains(unit), "{name}: base units only");
    }
  }
  assert!(families >= 15, "{families} families");
}

#[tokio::test]
async fn a_fleet_worker_shows_as_of_its_heartbeat_and_goes_when_it_leaves() {
  let f = fixture();
  let text = f.exporter.render().await.unwrap();
  assert!(!text.contains("wwebjs_rust_store_fleet_"), "no fleet joined: no fleet families");
  let snapshot = FleetSnapshot {
    group: "g".into(),
    worker: "w\"1".into(),
    capacity: 20,
    connected: true,
    workers: 3,
    running: 7,
    starting: 2,
    handoffs: 4,
    failovers: 1,
    unassigned: 5,
    oldest_unassigned_ms: 2500,
    ..Default::default()
  };
  f.exporter.store.counters().set_fleet(Some(snapshot));
  let text = f.exporter.render().await.unwrap();
  let l = r#"{group="g",worker="w\"1"}"#;
  for (name, value) in [
    ("capacity_sessions", 20.0),
    ("running_sessions", 7.0),
    ("starting_sessions", 2.0),
    ("workers", 3.0),
    ("draining", 0.0),
    ("connected", 1.0),
    ("unassigned_sessions", 5.0),
    ("oldest_unassigned_seconds", 2.5),
    ("handoffs_total", 4.0),
    ("failovers_total", 1.0),
  ] {
    assert_eq!(sample(&text, &format!("wwebjs_rust_store_fleet_{name}{l}")), Some(value), "{name}\n{text}");
  }
  assert!(text.contains("# TYPE wwebjs_rust_store_fleet_handoffs_total counter"), "{text}");
  f.exporter.store.counters().set_fleet(None);
  assert!(!f.exporter.render().await.unwrap().contains("wwebjs_rust_store_fleet_"));
}

#[test]
fn a_bad_host_or_a_port_in_use_names_its_own_option() {
  let host = bind("localhost", 0).unwrap_err();
  assert!(matches!(host, StoreError::InvalidOption { name: "metricsHost", .. }), "{host}");
  let taken = bind("127.0.0.1", 0).unwrap();
  let port = taken.local_addr().unwrap().port();
  let again = bind("127.0.0.1", port).unwrap_err();
  assert!(matches!(again, StoreError::InvalidOption { name: "metricsPort", .. }), "{again}");
}
