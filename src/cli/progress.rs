//! Progress bars on stderr, drawn only when it is a terminal (indicatif hides them otherwise).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::transfer::Progress;

pub struct Bar(ProgressBar);

pub fn bar(what: &'static str) -> Bar {
  let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
  let style =
    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}").map(|s| s.progress_chars("=> "));
  bar.set_style(style.unwrap_or_else(|_| ProgressStyle::default_bar()));
  bar.set_prefix(what);
  Bar(bar)
}

impl Bar {
  /// The `(done, total)` callback the core's bulk operations take.
  pub fn callback(&self) -> Progress {
    let bar = self.0.clone();
    Arc::new(move |done, total| {
      bar.set_length(total.into());
      bar.set_position(done.into());
    })
  }

  pub fn finish(self) {
    self.0.finish_and_clear();
  }
}
