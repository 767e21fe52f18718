//! Evaluating CUE with the evaluator guest (`build/go/cue.wasm`) in
//! wasm-host's host build: the same code that runs in the OS.

use std::path::{Path, PathBuf};

use wasm_host::{Host, Limits, StdSystem, Tree, Wasi};

use crate::{Error, Repo};

/// The evaluator module: `build/go/cue.wasm`.
pub fn evaluator(repo: &Repo) -> PathBuf {
    repo.go_programs().join("cue.wasm")
}

/// What a run of the evaluator printed, and its exit status.
pub struct Evaluation {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cue ARGS...` with `dir` as its working directory (preopened as
/// "/", read-only).
pub fn run(repo: &Repo, dir: &Path, args: &[&str]) -> Result<Evaluation, Error> {
    let module = evaluator(repo);
    let wasm = std::fs::read(&module).map_err(|e| {
        Error(format!(
            "evaluating CUE needs {} ({e}): build it with `make go` (Go 1.25 or newer); after that no Go is needed",
            module.display()
        ))
    })?;
    let archive = crate::tree_archive(dir)?;
    let tree = Tree::from_ustar(archive).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    let wasi = Wasi::builder(StdSystem::capturing())
        .arg("cue")
        .args(args.iter().copied())
        .preopen("/", tree)
        .build()
        .map_err(|e| Error(format!("starting the CUE evaluator: {e}")))?;
    let host = Host::new(Limits::default());
    let program = host
        .load(&wasm)
        .map_err(|e| Error(format!("{}: {e}", module.display())))?;
    let outcome = host.run(&program, wasi);
    let status = outcome
        .result
        .map_err(|e| Error(format!("the CUE evaluator failed: {e}")))?;
    let system = outcome.wasi.into_system();
    Ok(Evaluation {
        status,
        stdout: String::from_utf8_lossy(system.stdout()).into_owned(),
        stderr: String::from_utf8_lossy(system.stderr()).into_owned(),
    })
}

/// The appliance `name` evaluated against the schema, as JSON; CUE's own
/// errors (with file:line:col) when it does not evaluate or fit.
pub fn appliance_json(repo: &Repo, name: &str) -> Result<String, Error> {
    let file = repo.appliance_file(name);
    if !file.is_file() {
        let known = repo.appliances().unwrap_or_default().join(", ");
        return Err(Error(format!(
            "no appliance '{name}' ({} does not exist); appliances: {known}",
            file.display()
        )));
    }
    let relative = format!("appliances/{name}.cue");
    let evaluation = run(
        repo,
        &repo.config(),
        &["export", "-e", "appliance", "schema.cue", &relative],
    )?;
    if evaluation.status != 0 {
        return Err(Error(format!(
            "{relative} does not evaluate to a valid appliance:\n{}",
            evaluation.stderr.trim_end()
        )));
    }
    Ok(evaluation.stdout)
}
