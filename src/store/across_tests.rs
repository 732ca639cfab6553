//! Stores in one process standing for processes (each with its own locks) on one primary and one bucket: a
//! write-back is conditional on what it read, and versions are ordered by the save they hold. A request held
//! open in the bucket (`Held`) makes each race happen every time.

use std::io::Write;

use super::*;
use crate::tier::memory::Held;
use crate::tier::LocalDirTier;

pub(crate) struct Site {
  pub _dir: tempfile::TempDir,
  pub root: PathBuf,
  pub bucket: Arc<Held>,
}

impl Site {
  pub fn new() -> Self {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("auth")).unwrap();
    Self { _dir: dir, root, bucket: Arc::default() }
  }

  /// A store as another process would open it: its own locks, the same directory and bucket.
  pub fn process(&self) -> Store {
    let config = StoreConfig { data_path: self.root.join("auth"), pack: PackOptions::default(), local_dir: None };
    let primary = Arc::new(LocalDirTier::open(self.root.join("store")).unwrap());
    let backups = Backups::new(self.bucket.clone(), 3);
    let report: Reporter = Arc::new(|_, _| {});
    Store::new(Some(primary), Some((backups, BackupMode::EverySave(report))), config).unwrap()
  }

  pub fn primary(&self) -> LocalDirTier {
    LocalDirTier::open(self.root.join("store")).unwrap()
  }

  /// Saves `body` as the session's only file.
  pub async fn save(&self, store: &Store, body: &[u8]) -> Saved {
    self.save_as(store, "s", body).await
  }

  /// `save` of the session `session`.
  pub async fn save_as(&self, store: &Store, session: &str, body: &[u8]) -> Saved {
    let zip = self.root.join(format!("auth/{session}.zip"));
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    writer.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
    writer.write_all(body).unwrap();
    writer.finish().unwrap();
    store.save(session, Some(&zip)).await.unwrap()
  }

  /// `service` saves X and the primary loses it (a flushed Redis); another process's `restoreAll` reads X from the
  /// bucket, held there while `meanwhile` runs, then lands.
  pub async fn restore_all_racing<T>(
    &self,
    service: &Store,
    meanwhile: impl std::future::Future<Output = T>,
  ) -> Transfer {
    self.save(service, b"X").await;
    self.primary().delete(&key()).await.unwrap();
    let cli = self.process();
    let (reached, release) = self.bucket.hold("s/");
    let restore = tokio::spawn(async move { cli.restore_all(2, None).await.unwrap() });
    reached.notified().await;
    meanwhile.await;
    release.notify_one();
    restore.await.unwrap()
  }

  /// The body of the session's file in the primary's copy.
  pub async fn primary_body(&self) -> Option<Vec<u8>> {
    let bytes = self.primary().get(&key()).await.unwrap()?;
    Some(body_of(&bytes))
  }
}

pub(crate) fn key() -> SessionKey {
  SessionKey::parse("s").unwrap()
}

pub(crate) fn body_of(sealed: &[u8]) -> Vec<u8> {
  let (_, entries) = archive::read_entries(sealed, None, &Default::default(), "s").unwrap();
  match &entries.iter().find(|e| e.path.as_str().ends_with("000003.log")).unwrap().data {
    archive::Data::File(bytes) => bytes.clone(),
    archive::Data::Dir => unreachable!(),
  }
}

#[tokio::test]
async fn a_save_that_lands_while_a_restore_reads_the_backup_wins() {
  let site = Site::new();
  let service = site.process();
  let restored = site.restore_all_racing(&service, site.save(&service, b"Y")).await;
  assert_eq!(restored.copied, 0, "the restore found the session changed and wrote nothing");
  assert_eq!(site.primary_body().await.unwrap(), b"Y", "the acknowledged save stands");
}

#[tokio::test]
async fn a_save_that_replaces_a_copy_while_an_extract_warms_it_wins() {
  let site = Site::new();
  let (service, reader) = (site.process(), site.process());
  site.save(&service, b"X").await;
  // A damaged primary copy: the reader falls back to the bucket, held there, while the service saves Y.
  let mut damaged = site.primary().get(&key()).await.unwrap().unwrap();
  let last = damaged.len() - 1;
  damaged[last] ^= 1;
  site.primary().put(&key(), damaged).await.unwrap();
  let (reached, release) = site.bucket.hold("s/");
  let out = site.root.join("out.zip");
  let target = out.clone();
  let extract = tokio::spawn(async move { reader.extract("s", &target).await.unwrap() });
  reached.notified().await;
  site.save(&service, b"Y").await;
  release.notify_one();
  extract.await.unwrap();
  assert_eq!(site.primary_body().await.unwrap(), b"Y", "the warm-up did not write X over Y");
  let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
  let mut got = Vec::new();
  std::io::Read::read_to_end(&mut zip.by_name("Default/IndexedDB/db/000003.log").unwrap(), &mut got).unwrap();
  assert_eq!(got, b"Y", "and the extract gave the save that won");
}

/// The fleet's write-back of a session the primary lost (`keep_in_primary`): a logout in another process whose
/// mark lands while the backup is read is not undone: the copy written back goes again, and the answer is
/// `Deleted`. Without the delete, the copy is restored, and a second call finds it present.
#[tokio::test]
async fn a_logout_that_lands_while_the_fleet_restores_a_session_stays_a_logout() {
  use crate::store::members::Kept;
  let site = Site::new();
  let (owner, cli) = (site.process(), site.process());
  site.save(&owner, b"X").await;
  site.primary().delete(&key()).await.unwrap();
  assert_eq!(owner.keep_in_primary(&key()).await.unwrap(), Kept::Restored);
  assert_eq!(site.primary_body().await.unwrap(), b"X");
  assert_eq!(owner.keep_in_primary(&key()).await.unwrap(), Kept::Present);

  site.primary().delete(&key()).await.unwrap();
  let (reached, release) = site.bucket.hold("s/");
  let restore = tokio::spawn(async move { owner.keep_in_primary(&key()).await.unwrap() });
  reached.notified().await;
  cli.delete("s").await.unwrap();
  release.notify_one();
  assert_eq!(restore.await.unwrap(), Kept::Deleted);
  assert_eq!(site.primary_body().await, None, "the logged-out session is not back in the primary");
  assert!(!cli.session_exists("s").await.unwrap());
}

/// The CLI's restore reads the bucket for a session the primary lost while the service logs out (another process:
/// no lock orders them); its write-back lands after the logout's mark. It looks for the mark after writing and
/// takes its copy down again: the logged-out session stays out. Found by the model (`backup_model`, seed 40).
#[tokio::test]
async fn a_logout_that_lands_while_the_cli_restores_the_session_stays_a_logout() {
  let site = Site::new();
  let service = site.process();
  let restored = site.restore_all_racing(&service, async { service.delete("s").await.unwrap() }).await;
  assert_eq!(restored.copied, 0, "nothing restored");
  assert_eq!(site.primary_body().await, None, "the logged-out session is not back in the primary");
  assert!(!service.session_exists("s").await.unwrap());
}

/// The other half of seed 40's race: the CLI's write-back lands between the logout's delete of the primary copy
/// and its mark (the mark's upload held). The write-back finds no mark and stays, until the logout, its mark
/// landed, looks at the primary again and takes the copy down: the logged-out session stays out.
#[tokio::test]
async fn a_write_back_between_a_logouts_delete_and_its_mark_is_taken_down_by_the_logout() {
  let site = Site::new();
  let (service, cli) = (site.process(), site.process());
  site.save(&service, b"X").await;
  let (reached, release) = site.bucket.hold_put(".gone");
  let logout = tokio::spawn(async move {
    service.delete("s").await.unwrap();
    service
  });
  reached.notified().await;
  assert_eq!(site.primary_body().await, None, "the logout deleted the primary's copy, its mark not yet written");
  assert_eq!(cli.restore_all(2, None).await.unwrap().copied, 1, "the write-back saw no mark");
  assert_eq!(site.primary_body().await.unwrap(), b"X");
  release.notify_one();
  let service = logout.await.unwrap();
  assert_eq!(site.primary_body().await, None, "taken down once the mark landed");
  assert!(!service.session_exists("s").await.unwrap());
  assert!(!cli.session_exists("s").await.unwrap());
}
