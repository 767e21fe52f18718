//! What the tests that evaluate CUE share.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use appliance::Repo;

pub fn repo() -> Repo {
    Repo::this()
}

/// Builds the Go programs (wasm and the native evaluator) once.
pub fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let repo = repo();
        let output = Command::new(repo.root.join("scripts/build-go-wasm"))
            .arg("--programs")
            .output()
            .expect("scripts/build-go-wasm runs");
        assert!(
            output.status.success(),
            "building the Go programs failed (needs Go 1.25+):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        repo.go_programs()
    })
}

/// A repository of its own under the temporary directory, with this
/// one's schema and evaluator, a stand-in `hello` guest binary, and
/// `appliances` as config/appliances/NAME.cue files.
pub struct ScratchRepo {
    pub repo: Repo,
}

impl ScratchRepo {
    pub fn new(test: &str, appliances: &[(&str, &str)]) -> ScratchRepo {
        built();
        let root =
            std::env::temp_dir().join(format!("appliance-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let config = root.join("config");
        std::fs::create_dir_all(config.join("appliances")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::copy(
            repo().config().join("schema.cue"),
            config.join("schema.cue"),
        )
        .unwrap();
        std::os::unix::fs::symlink(repo().go_programs(), root.join("build/go")).unwrap();
        let scratch = ScratchRepo {
            repo: Repo { root },
        };
        std::fs::create_dir_all(scratch.repo.native_binaries()).unwrap();
        std::fs::write(scratch.repo.native_binaries().join("hello"), b"a guest").unwrap();
        for (name, text) in appliances {
            std::fs::write(scratch.repo.appliance_file(name), text).unwrap();
        }
        scratch
    }
}

impl Drop for ScratchRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.repo.root);
    }
}
