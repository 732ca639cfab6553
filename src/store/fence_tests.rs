//! The folders a profile call must never take, however they are spelt.

use std::os::unix::fs::symlink;

use super::*;

struct Place {
  _tmp: tempfile::TempDir,
  root: PathBuf,
  guarded: Guarded,
}

/// A cwd holding the embedded store (`.wwebjs_store`) and `dataPath` (`.wwebjs_auth`), as the defaults are.
fn place() -> Place {
  let tmp = tempfile::tempdir().unwrap();
  let root = std::fs::canonicalize(tmp.path()).unwrap();
  let cwd = root.join("app");
  for dir in [".wwebjs_store", ".wwebjs_auth/RemoteAuth-a"] {
    std::fs::create_dir_all(cwd.join(dir)).unwrap();
  }
  let guarded =
    Guarded { data_path: cwd.join(".wwebjs_auth"), store_dir: Some(cwd.join(".wwebjs_store")), cwd: cwd.clone() };
  Place { _tmp: tmp, root, guarded }
}

fn refused(place: &Place, dir: impl AsRef<Path>, use_: Use) -> String {
  let err = profile_dir(dir.as_ref(), use_, &place.guarded).unwrap_err();
  assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}");
  err.to_string()
}

#[test]
fn the_cwd_the_store_data_path_and_what_holds_them_are_refused() {
  let p = place();
  for use_ in [Use::Save, Use::Restore] {
    assert!(refused(&p, "", use_).contains("is empty"));
    for dir in [".", "./", "app/..", ".wwebjs_auth/.."] {
      assert!(refused(&p, dir, use_).contains("the current directory"), "{dir}");
    }
    assert!(refused(&p, &p.guarded.cwd, use_).contains("is the current directory"));
    assert!(refused(&p, "/", use_).contains("root"));
    assert!(refused(&p, "..", use_).contains("holds the current directory"));
    assert!(refused(&p, &p.root, use_).contains("holds the current directory"));
    assert!(refused(&p, ".wwebjs_auth", use_).contains("is dataPath"));
    assert!(refused(&p, ".wwebjs_store", use_).contains("is the store's own folder"));
  }
  assert!(refused(&p, ".wwebjs_store/RemoteAuth-a", Use::Restore).contains("inside the store's own folder"));
  let profile = p.guarded.data_path.join("RemoteAuth-a");
  assert_eq!(profile_dir(Path::new(".wwebjs_auth/RemoteAuth-a"), Use::Restore, &p.guarded).unwrap(), profile);
  assert_eq!(profile_dir(&profile, Use::Save, &p.guarded).unwrap(), profile);
  let fresh = p.guarded.data_path.join("not/there/yet");
  assert_eq!(profile_dir(&fresh, Use::Restore, &p.guarded).unwrap(), fresh, "a folder that does not exist yet");
}

#[test]
fn data_path_and_store_elsewhere_are_guarded_with_their_parents() {
  let mut p = place();
  p.guarded.data_path = p.root.join("volume/auth");
  p.guarded.store_dir = Some(p.root.join("volume/store"));
  std::fs::create_dir_all(p.root.join("volume/auth")).unwrap();
  assert!(refused(&p, p.root.join("volume"), Use::Restore).contains("holds dataPath"));
  assert!(refused(&p, p.root.join("volume/store"), Use::Restore).contains("is the store's own folder"));
  profile_dir(&p.root.join("volume/auth/RemoteAuth-a"), Use::Restore, &p.guarded).unwrap();
}

#[test]
fn links_are_resolved_before_the_checks() {
  let p = place();
  let auth = &p.guarded.data_path;
  symlink(&p.guarded.cwd, auth.join("to-cwd")).unwrap();
  symlink("..", auth.join("up")).unwrap();
  symlink(p.guarded.store_dir.as_ref().unwrap(), auth.join("to-store")).unwrap();
  symlink("/", auth.join("to-root")).unwrap();
  assert!(refused(&p, auth.join("to-cwd"), Use::Restore).contains("is the current directory"));
  assert!(refused(&p, auth.join("up"), Use::Restore).contains("is the current directory"), "up = the cwd");
  assert!(refused(&p, auth.join("to-store"), Use::Restore).contains("store's own folder"));
  assert!(refused(&p, auth.join("to-root"), Use::Save).contains("root"));
  assert!(refused(&p, auth.join("missing/../to-cwd"), Use::Restore).contains("current directory"));

  // A link to a profile elsewhere resolves to its target: the restore goes there, the link stays.
  let volume = p.root.join("volume/RemoteAuth-a");
  std::fs::create_dir_all(&volume).unwrap();
  symlink(&volume, auth.join("RemoteAuth-b")).unwrap();
  assert_eq!(profile_dir(&auth.join("RemoteAuth-b"), Use::Restore, &p.guarded).unwrap(), volume);
  symlink(p.root.join("nowhere"), auth.join("dangling")).unwrap();
  assert!(refused(&p, auth.join("dangling"), Use::Restore).contains("a link to nothing"));
  std::fs::write(auth.join("file"), b"").unwrap();
  assert!(refused(&p, auth.join("file"), Use::Restore).contains("not a folder"));
}
