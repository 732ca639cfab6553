use super::*;
use crate::tier::memory::Memory;

fn sealed(n: u8) -> Vec<u8> {
  let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
  zip.start_file("Default/IndexedDB/f", zip::write::SimpleFileOptions::default()).unwrap();
  std::io::Write::write_all(&mut zip, &[n; 100]).unwrap();
  let zip = zip.finish().unwrap().into_inner();
  archive::pack_zip(std::io::Cursor::new(&zip), &Default::default(), "s").unwrap().bytes
}

fn key(s: &str) -> SessionKey {
  SessionKey::parse(s).unwrap()
}

#[tokio::test]
async fn keeps_the_newest_n_versions() {
  let memory = Arc::new(Memory::default());
  let backups = Backups::new(memory.clone(), 3);
  let archives: Vec<Vec<u8>> = (0..5u8).map(sealed).collect();
  for (i, bytes) in archives.iter().enumerate() {
    backups.write(&key("s"), bytes.clone(), 1_000 + i as u64).await.unwrap();
  }
  let versions = backups.versions(&key("s")).await.unwrap();
  assert_eq!(versions.len(), 3);
  assert!(versions[0].key.starts_with("s/0000000001002-"), "{versions:?}");
  assert_eq!((versions[0].ms, versions[0].size), (1002, archives[2].len() as u64));
  assert_eq!(backups.newest_good(&key("s")).await.unwrap().unwrap(), archives[4]);
}

#[tokio::test]
async fn a_failed_upload_leaves_the_previous_versions() {
  let memory = Arc::new(Memory::default());
  let backups = Backups::new(memory.clone(), 1);
  let good = sealed(1);
  backups.write(&key("s"), good.clone(), 1).await.unwrap();
  *memory.fail_puts.lock().unwrap() = true;
  assert_eq!(backups.write(&key("s"), sealed(2), 2).await.unwrap_err().code(), "ERR_S3_UNAVAILABLE");
  assert_eq!(backups.newest_good(&key("s")).await.unwrap().unwrap(), good);
}

#[tokio::test]
async fn a_damaged_newest_version_falls_back_to_an_older_good_one() {
  let memory = Arc::new(Memory::default());
  let backups = Backups::new(memory.clone(), 3);
  let good = sealed(1);
  backups.write(&key("s"), good.clone(), 1).await.unwrap();
  let newest = backups.write(&key("s"), sealed(2), 2).await.unwrap().key;
  memory.objects.lock().unwrap().get_mut(&newest).unwrap().0.truncate(50);
  assert_eq!(backups.newest_good(&key("s")).await.unwrap().unwrap(), good);
  memory.objects.lock().unwrap().values_mut().for_each(|(v, _)| v.truncate(50));
  assert_eq!(backups.newest_good(&key("s")).await.unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  assert_eq!(backups.newest_good(&key("nothing")).await.unwrap(), None);
}

#[tokio::test]
async fn sessions_deletes_and_foreign_objects() {
  let memory = Arc::new(Memory::default());
  let backups = Backups::new(memory.clone(), 3);
  backups.write(&key("a"), sealed(1), 1).await.unwrap();
  backups.write(&key("a"), sealed(2), 2).await.unwrap();
  backups.write(&key("b"), sealed(3), 3).await.unwrap();
  memory.put("notes.txt", b"x".to_vec()).await.unwrap();
  memory.put("c/readme.md", b"x".to_vec()).await.unwrap();
  assert_eq!(backups.sessions().await.unwrap(), vec![key("a"), key("b")]);
  assert!(!backups.exists(&key("c")).await.unwrap(), "a foreign object is not a version");
  backups.delete(&key("a")).await.unwrap();
  assert_eq!(backups.sessions().await.unwrap(), vec![key("b")]);
  assert!(memory.get("c/readme.md").await.unwrap().is_some(), "foreign objects are left alone");
}

#[test]
fn version_names() {
  assert_eq!(version_ms("1764000000000-0a1b2c3d.wwrs"), Some((1_764_000_000_000, false)));
  assert_eq!(version_ms("1764000000000-0a1b2c3d.wwmf"), Some((1_764_000_000_000, true)));
  for bad in ["1764000000000-0a1b2c3d.zip", "176400000000-0a1b2c3d.wwrs", "1764000000000-0a1b2c3g.wwrs", "x.wwrs", ""] {
    assert_eq!(version_ms(bad), None, "{bad}");
  }
}

#[tokio::test]
async fn a_writer_with_a_lagging_clock_still_writes_the_newest_version() {
  let memory = Arc::new(Memory::default());
  let backups = Backups::new(memory.clone(), 1);
  backups.write(&key("s"), sealed(1), 5_000).await.unwrap();
  let late = sealed(2);
  let name = backups.write(&key("s"), late.clone(), 1_000).await.unwrap().key;
  assert!(name.starts_with("s/0000000005001-"), "{name}");
  let keys: Vec<String> = backups.versions(&key("s")).await.unwrap().into_iter().map(|v| v.key).collect();
  assert_eq!(keys, vec![name]);
  assert_eq!(backups.newest_good(&key("s")).await.unwrap().unwrap(), late);
}
