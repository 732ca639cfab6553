//! Chromium's profile lock: whether a browser may be running on a profile folder. `migrate` and `cleanup` leave
//! such folders alone; `restoreProfile` refuses to replace one a live browser holds.

use std::path::Path;

/// Chromium's lock file is there: `SingletonLock` (a symlink) on Linux and macOS, `lockfile` on Windows. A browser
/// may be running on the folder, or one crashed there.
pub fn browser_lock(profile: &Path) -> bool {
  ["SingletonLock", "lockfile"].iter().any(|name| std::fs::symlink_metadata(profile.join(name)).is_ok())
}

/// Who holds the folder, when a running browser may: `SingletonLock` names `<host>-<pid>`; one naming this host
/// and a process that is gone is a crashed browser's and holds nothing. One naming another host (a shared
/// volume), or that cannot be read, counts as held: Chromium itself refuses to start on it then.
pub fn live_browser(profile: &Path) -> Option<String> {
  if std::fs::symlink_metadata(profile.join("lockfile")).is_ok() {
    return Some("a browser's lockfile".into());
  }
  let singleton = profile.join("SingletonLock");
  std::fs::symlink_metadata(&singleton).ok()?;
  let Ok(target) = std::fs::read_link(&singleton) else { return Some("an unreadable SingletonLock".into()) };
  let target = target.to_string_lossy().into_owned();
  let named = target.rsplit_once('-').and_then(|(host, pid)| Some((host.to_owned(), pid.parse::<i32>().ok()?)));
  match named {
    Some((host, pid)) if pid > 0 && Some(host.as_str()) == this_host().as_deref() && !alive(pid) => None,
    _ => Some(format!("SingletonLock {target}")),
  }
}

#[cfg(unix)]
fn this_host() -> Option<String> {
  let mut buf = [0u8; 256];
  // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
  if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
    return None;
  }
  let len = buf.iter().position(|&b| b == 0)?;
  Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[cfg(not(unix))]
fn this_host() -> Option<String> {
  None
}

/// Whether process `pid` of this host is there (one of another user counts: `EPERM`).
#[cfg(unix)]
fn alive(pid: i32) -> bool {
  // SAFETY: signal 0 only checks that the process exists.
  let sent = unsafe { libc::kill(pid, 0) } == 0;
  // errno read through std: `__errno_location` is glibc's and musl's name only (macOS has `__error`).
  sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_: i32) -> bool {
  true
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;

  #[test]
  fn a_live_browser_holds_the_folder_a_dead_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(live_browser(dir.path()), None);
    let lock = dir.path().join("SingletonLock");
    let host = this_host().unwrap();
    std::os::unix::fs::symlink(format!("{host}-{}", std::process::id()), &lock).unwrap();
    assert!(live_browser(dir.path()).unwrap().contains(&host), "this process is alive");
    assert!(browser_lock(dir.path()));
    std::fs::remove_file(&lock).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::os::unix::fs::symlink(format!("{host}-{dead}"), &lock).unwrap();
    assert_eq!(live_browser(dir.path()), None, "a crashed browser's lock holds nothing");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("another-host-1", &lock).unwrap();
    assert!(live_browser(dir.path()).is_some(), "another host's browser cannot be asked: held");
  }
}
