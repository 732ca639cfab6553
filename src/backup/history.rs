//! What each backup version of a session holds, by header: lets the store place a primary copy in the
//! session's backup history without trusting any writer's clock.

use super::Backups;
use crate::archive::{self, Header};
use crate::error::Result;
use crate::session::SessionKey;

impl Backups {
  /// The header of every version, oldest first (`None` for one gone or unreadable since the listing). An
  /// incremental version's comes from its manifest, with the fields that name its save.
  pub async fn headers(&self, key: &SessionKey) -> Result<Vec<Option<Header>>> {
    let mut out = Vec::new();
    for version in self.versions(key).await? {
      let header = match version.incremental {
        true => self.repo.manifest(key, &version.key).await.ok().flatten().map(|m| Header {
          version: archive::FORMAT_VERSION,
          flags: archive::FLAG_ZIP,
          entries: m.entries.len() as u32,
          files_bytes: m.files_bytes(),
          source_bytes: m.source_bytes,
          created_ms: m.created_ms,
          payload_len: 0,
        }),
        false => match self.tier.head(&version.key, archive::HEADER_LEN).await? {
          Some(head) => archive::peek(&head).ok(),
          None => None,
        },
      };
      out.push(header);
    }
    Ok(out)
  }
}
