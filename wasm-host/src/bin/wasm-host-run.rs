//! Runs a wasip1 module on this host:
//!
//! ```text
//! wasm-host-run [--dir TAR_OR_DIR] [--dir-name NAME] [--mount HOST_DIR:NAME]...
//!               [--env K=V]... [--fuel N] [--max-memory-pages N] [--max-call-depth N]
//!               module.wasm [args...]
//! ```
//!
//! `--dir` preopens a read-only tree (a host directory, or a ustar file) as
//! "/" (or NAME); each `--mount` preopens a host directory, writable, as
//! NAME (after the tree). The process exits with the module's exit code (modulo 256,
//! as any process). When the module does not run to one, it prints why and
//! exits with [`RunError::exit_status`]: 137 for a limit (fuel, memory, call
//! depth), 134 for a trap, 126 when it could not start (a bad module or
//! tree); 2 for bad options.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wasm_host::{Host, Limits, RunError, StdSystem, Tree, Wasi, archive_from_dir};

/// Why there is no exit code: the program's own failure, or ours before it
/// could start (which exits like a module that cannot run).
enum Failure {
    Run(RunError),
    Setup(String),
}

#[derive(Debug)]
struct Options {
    tree: Option<PathBuf>,
    tree_name: String,
    /// (host directory, preopen name), writable.
    mounts: Vec<(PathBuf, String)>,
    env: Vec<(String, String)>,
    limits: Limits,
    module: PathBuf,
    args: Vec<String>,
}

const USAGE: &str = "usage: wasm-host-run [--dir TAR_OR_DIR] [--dir-name NAME] [--mount HOST_DIR:NAME]... \
                     [--env K=V]... [--fuel N] [--max-memory-pages N] [--max-call-depth N] \
                     module.wasm [args...]";

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut tree = None;
    let mut tree_name = String::from("/");
    let mut mounts = Vec::new();
    let mut env = Vec::new();
    let mut limits = Limits::default();
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))
    };
    let module = loop {
        let Some(arg) = argv.next() else {
            return Err(String::from("no module given"));
        };
        match arg.as_str() {
            "--dir" => tree = Some(PathBuf::from(argv.next().ok_or("--dir needs a value")?)),
            "--dir-name" => tree_name = argv.next().ok_or("--dir-name needs a value")?,
            "--mount" => {
                let mount = argv.next().ok_or("--mount needs HOST_DIR:NAME")?;
                let (host, name) = mount
                    .rsplit_once(':')
                    .filter(|(host, name)| !host.is_empty() && name.starts_with('/'))
                    .ok_or_else(|| format!("--mount {mount:?}: expected HOST_DIR:/NAME"))?;
                mounts.push((PathBuf::from(host), name.to_string()));
            }
            "--env" => {
                let pair = argv.next().ok_or("--env needs K=V")?;
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--env {pair:?}: expected K=V"))?;
                env.push((key.to_string(), value.to_string()));
            }
            "--fuel" => limits.fuel = Some(number("--fuel", argv.next())?),
            "--max-memory-pages" => {
                limits.max_memory_pages = u32::try_from(number("--max-memory-pages", argv.next())?)
                    .map_err(|_| String::from("--max-memory-pages: too large"))?;
            }
            "--max-call-depth" => {
                limits.max_call_depth = usize::try_from(number("--max-call-depth", argv.next())?)
                    .map_err(|_| String::from("--max-call-depth: too large"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            "--" => break PathBuf::from(argv.next().ok_or("no module given")?),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => break PathBuf::from(arg),
        }
    };
    Ok(Options {
        tree,
        tree_name,
        mounts,
        env,
        limits,
        module,
        args: argv.collect(),
    })
}

fn load_tree(path: &Path) -> Result<Tree, String> {
    let image = if path.is_dir() {
        archive_from_dir(path, None).map_err(|error| format!("{}: {error}", path.display()))?
    } else {
        std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?
    };
    Tree::from_ustar(image).map_err(|error| format!("{}: {error}", path.display()))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("wasm-host-run: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        // As any process's status, the code is taken modulo 256.
        Ok(code) => ExitCode::from(code as u8),
        Err(Failure::Run(error)) => {
            eprintln!("wasm-host-run: {error}");
            ExitCode::from(error.exit_status())
        }
        Err(Failure::Setup(message)) => {
            eprintln!("wasm-host-run: {message}");
            ExitCode::from(126)
        }
    }
}

fn run(options: Options) -> Result<u32, Failure> {
    let wasm = std::fs::read(&options.module)
        .map_err(|error| Failure::Setup(format!("{}: {error}", options.module.display())))?;
    let mut system = StdSystem::new();
    let mut mounts = Vec::new();
    for (host, name) in &options.mounts {
        let handle = system
            .host_directory(host)
            .map_err(|error| Failure::Setup(format!("--mount {}: {error}", host.display())))?;
        mounts.push((name.clone(), handle));
    }
    let mut builder = Wasi::builder(system)
        .arg(options.module.to_string_lossy())
        .args(options.args);
    for (key, value) in options.env {
        builder = builder.env(key, value);
    }
    if let Some(path) = &options.tree {
        builder = builder.preopen(options.tree_name, load_tree(path).map_err(Failure::Setup)?);
    }
    for (name, handle) in mounts {
        builder = builder.preopen_directory(name, handle, true);
    }
    let wasi = builder
        .build()
        .map_err(|error| Failure::Setup(error.to_string()))?;
    let host = Host::new(options.limits);
    let program = host.load(&wasm).map_err(Failure::Run)?;
    host.run(&program, wasi).result.map_err(Failure::Run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Options, String> {
        parse(words.iter().map(|word| word.to_string()))
    }

    #[test]
    fn options_come_before_the_module_and_the_rest_are_its_args() {
        let options = parse_words(&[
            "--dir",
            "tree",
            "--env",
            "A=1=2",
            "--fuel",
            "10",
            "--max-memory-pages",
            "32",
            "m.wasm",
            "--fuel",
            "x",
        ])
        .unwrap();
        assert_eq!(options.tree, Some(PathBuf::from("tree")));
        assert_eq!(options.env, [("A".to_string(), "1=2".to_string())]);
        assert_eq!(options.limits.fuel, Some(10));
        assert_eq!(options.limits.max_memory_pages, 32);
        assert_eq!(options.module, PathBuf::from("m.wasm"));
        assert_eq!(options.args, ["--fuel", "x"]);
        assert_eq!(options.tree_name, "/");
        assert!(options.mounts.is_empty());
    }

    #[test]
    fn mounts_name_a_host_directory_and_where_it_goes() {
        let options = parse_words(&["--mount", "/tmp/a:b:/data", "--mount", "x:/y", "m"]).unwrap();
        assert_eq!(
            options.mounts,
            [
                (PathBuf::from("/tmp/a:b"), "/data".to_string()),
                (PathBuf::from("x"), "/y".to_string())
            ]
        );
        assert!(parse_words(&["--mount", "nowhere", "m"]).is_err());
        assert!(parse_words(&["--mount", "dir:relative", "m"]).is_err());
    }

    #[test]
    fn a_double_dash_ends_the_options() {
        let options = parse_words(&["--", "--odd-name.wasm", "a"]).unwrap();
        assert_eq!(options.module, PathBuf::from("--odd-name.wasm"));
        assert_eq!(options.args, ["a"]);
    }

    #[test]
    fn bad_options_are_explained() {
        assert!(parse_words(&[]).unwrap_err().contains("no module"));
        assert!(
            parse_words(&["--fuel"])
                .unwrap_err()
                .contains("--fuel needs a value")
        );
        assert!(
            parse_words(&["--env", "novalue", "m"])
                .unwrap_err()
                .contains("K=V")
        );
        assert!(
            parse_words(&["--bogus", "m"])
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(parse_words(&["--max-memory-pages", "99999999999", "m"]).is_err());
    }
}
