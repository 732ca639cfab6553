use super::*;

const QUICK: Bounds = Bounds {
  zip_gone: Duration::from_secs(20),
  pad_whole: Duration::from_secs(20),
  pad_quiet: Duration::from_millis(50),
  closing: Duration::from_millis(200),
  poll: Duration::from_millis(5),
};

struct Restore {
  _tmp: tempfile::TempDir,
  zip: PathBuf,
  profile: PathBuf,
  pad: PathBuf,
}

fn padded() -> Written {
  Written { padded: true, ..Default::default() }
}

fn restore() -> Restore {
  let tmp = tempfile::tempdir().unwrap();
  let (zip, profile) = (tmp.path().join("RemoteAuth-s.zip"), tmp.path().join("RemoteAuth-s"));
  std::fs::write(&zip, b"zip").unwrap();
  std::fs::create_dir_all(profile.join("Default")).unwrap();
  let pad = profile.join(PAD_NAME);
  Restore { _tmp: tmp, zip, profile, pad }
}

async fn until(what: &str, done: impl Fn() -> bool) {
  let deadline = Instant::now() + Duration::from_secs(20);
  while !done() {
    assert!(Instant::now() < deadline, "{what}");
    sleep(Duration::from_millis(5)).await;
  }
}

#[tokio::test]
async fn a_whole_pad_goes_once_the_zip_is_gone_and_the_rest_stays() {
  let r = restore();
  let sweeper = PadSweeper::new(QUICK);
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::write(&r.pad, vec![0; HOLDS_BACK as usize]).unwrap();
  std::fs::write(r.profile.join("Default/kept"), b"x").unwrap();
  std::fs::remove_file(&r.zip).unwrap();
  until("the pad is removed", || !r.pad.exists()).await;
  assert!(r.profile.join("Default/kept").exists());
  sweeper.close().await;
}

#[tokio::test]
async fn nothing_is_touched_while_the_zip_is_there() {
  let r = restore();
  let sweeper = PadSweeper::new(QUICK);
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::write(&r.pad, vec![0; HOLDS_BACK as usize]).unwrap();
  sweeper.close().await; // a plain extract nobody unzipped: the watch ends, the files stay
  assert!(r.pad.exists() && r.zip.exists());
}

#[tokio::test]
async fn close_removes_a_pad_still_being_written_and_waits_for_its_watch() {
  let r = restore();
  let sweeper = PadSweeper::new(Bounds { pad_quiet: Duration::from_secs(600), ..QUICK });
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::write(&r.pad, vec![0; 1000]).unwrap(); // its writer is still streaming
  std::fs::remove_file(&r.zip).unwrap();
  sweeper.close().await;
  assert!(!r.pad.exists());
}

#[tokio::test]
async fn a_short_pad_that_stops_growing_is_removed() {
  let r = restore();
  let sweeper = PadSweeper::new(QUICK);
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::remove_file(&r.zip).unwrap();
  std::fs::write(&r.pad, vec![0; 4096]).unwrap();
  until("the short pad is removed", || !r.pad.exists()).await;
  sweeper.close().await;
}

#[tokio::test]
async fn a_zip_written_again_counts_as_gone() {
  let r = restore();
  let sweeper = PadSweeper::new(QUICK);
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::write(&r.pad, vec![0; HOLDS_BACK as usize]).unwrap();
  std::fs::write(&r.zip, b"another extract's zip").unwrap(); // the session restored again meanwhile
  until("the pad is removed", || !r.pad.exists()).await;
  sweeper.close().await;
}

#[tokio::test]
async fn what_is_not_a_pad_is_never_removed() {
  let r = restore();
  let sweeper = PadSweeper::new(QUICK);
  let others =
    [("not zeros", vec![1u8; HOLDS_BACK as usize]), ("larger than the pad", vec![0u8; HOLDS_BACK as usize + 1])];
  for (what, data) in others {
    std::fs::write(&r.zip, b"zip").unwrap();
    sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
    std::fs::write(&r.pad, &data).unwrap();
    std::fs::remove_file(&r.zip).unwrap();
    sweeper.close().await;
    assert_eq!(std::fs::read(&r.pad).unwrap(), data, "{what}");
  }
  std::fs::remove_file(&r.pad).unwrap();
  std::fs::create_dir(&r.pad).unwrap();
  std::fs::write(&r.zip, b"zip").unwrap();
  sweeper.watch(r.zip.clone(), vec![r.profile.clone()], padded());
  std::fs::remove_file(&r.zip).unwrap();
  sweeper.close().await;
  assert!(r.pad.is_dir(), "a folder");
}

#[tokio::test]
async fn a_pad_that_never_comes_ends_the_watch() {
  let r = restore();
  let sweeper = PadSweeper::new(Bounds { pad_whole: Duration::from_millis(50), ..QUICK });
  sweeper.watch(r.zip.clone(), vec![r.profile.clone(), r.profile.join("elsewhere")], padded());
  std::fs::remove_file(&r.zip).unwrap();
  let tasks = |s: &PadSweeper| s.running.lock().unwrap().tasks.len();
  assert_eq!(tasks(&sweeper), 2);
  until("both watches end", || {
    let mut running = sweeper.running.lock().unwrap();
    while running.tasks.try_join_next().is_some() {}
    running.tasks.is_empty()
  })
  .await;
  sweeper.close().await;
  assert!(!r.pad.exists());
}

#[tokio::test]
async fn close_does_not_wait_on_a_folder_the_zip_was_not_unzipped_into() {
  let r = restore();
  let sweeper = PadSweeper::new(Bounds { closing: Duration::from_secs(600), ..QUICK });
  sweeper.watch(r.zip.clone(), vec![r.profile.join("never-made")], padded());
  std::fs::remove_file(&r.zip).unwrap();
  sweeper.close().await; // returns at once, though `closing` would wait ten minutes for a pad
}

#[tokio::test]
async fn the_empty_folders_are_made_where_the_pad_went_and_nowhere_else() {
  let r = restore();
  let other = r.profile.parent().unwrap().join("other");
  std::fs::create_dir_all(&other).unwrap(); // a candidate that exists but got no pad
  let sweeper = PadSweeper::new(QUICK);
  let folders = vec!["Default/IndexedDB/a.blob".to_owned(), "Default/Local Storage/empty".to_owned()];
  let plan = Written { empty_folders: folders.clone(), ..padded() };
  sweeper.watch(r.zip.clone(), vec![r.profile.clone(), other.clone()], plan);
  std::fs::write(&r.pad, vec![0; HOLDS_BACK as usize]).unwrap();
  std::fs::remove_file(&r.zip).unwrap();
  sweeper.close().await;
  assert!(!r.pad.exists());
  for folder in &folders {
    assert!(r.profile.join(folder).is_dir(), "{folder} made");
    assert!(!other.join(folder).exists(), "{folder} not made in the other candidate");
  }
}

#[tokio::test]
async fn without_a_pad_the_folders_go_where_the_last_file_is_and_a_file_in_the_way_stays() {
  let r = restore();
  let other = r.profile.parent().unwrap().join("other");
  std::fs::create_dir_all(other.join("Default")).unwrap();
  std::fs::write(r.profile.join("Default/big"), b"last").unwrap();
  std::fs::write(r.profile.join("Default/taken"), b"mine").unwrap();
  let sweeper = PadSweeper::new(QUICK);
  let plan = Written {
    padded: false,
    empty_folders: vec!["Default/empty".into(), "Default/taken".into()],
    last_file: Some("Default/big".into()),
  };
  sweeper.watch(r.zip.clone(), vec![r.profile.clone(), other.clone()], plan);
  std::fs::remove_file(&r.zip).unwrap();
  until("folder made", || r.profile.join("Default/empty").is_dir()).await;
  sweeper.close().await;
  assert_eq!(std::fs::read(r.profile.join("Default/taken")).unwrap(), b"mine");
  assert!(!other.join("Default/empty").exists());
  assert!(!r.pad.exists(), "no pad was made");
}

#[test]
fn the_profile_beside_the_zip_and_under_the_data_path() {
  let key = SessionKey::parse("RemoteAuth-s").unwrap();
  let data = Path::new("/data/.wwebjs_auth");
  // whatsapp-web.js >= 1.34.5: the zip in the data path, beside the profile
  let dirs = profiles(&data.join("RemoteAuth-s.zip"), &key, data);
  assert_eq!(dirs, vec![data.join("RemoteAuth-s")]);
  // 1.34.4: the zip in the cwd, the profile in RemoteAuth's data path
  assert_eq!(
    profiles(Path::new("/cwd/RemoteAuth-s.zip"), &key, data),
    vec![data.join("RemoteAuth-s"), "/cwd/RemoteAuth-s".into()]
  );
  // a zip named otherwise (`extract --out`): only the data path
  assert_eq!(profiles(Path::new("/tmp/out.zip"), &key, data), vec![data.join("RemoteAuth-s")]);
}
