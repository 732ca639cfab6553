//! `npx wwebjs-rust-store …`: the CLI runs inside the addon, so the npm package needs no second binary.

// Only Node calls these; `cargo test` builds no registration for them.
#![cfg_attr(test, allow(dead_code))]

use napi_derive::napi;

/// What a command line printed, and its exit code. Output is handed to Node to write, so Node's own stdio
/// handling (pipes, non-blocking fds) stays in charge.
#[napi(object)]
pub struct CliOutput {
  pub code: i32,
  pub stdout: String,
  pub stderr: String,
}

/// Runs the `wwebjs-rust-store` command line (`argv` without `node` and the script: `['stats', '--json']`).
#[napi]
pub async fn run_cli(argv: Vec<String>) -> CliOutput {
  let args = std::iter::once("wwebjs-rust-store".to_owned()).chain(argv).collect();
  let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
  let code = crate::cli::run(args, &mut stdout, &mut stderr).await;
  let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
  CliOutput { code, stdout: text(stdout), stderr: text(stderr) }
}
