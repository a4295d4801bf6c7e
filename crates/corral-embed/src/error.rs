//! The one error type of this crate, [`EmbedError`], and its mapping onto
//! the core runtime's [`BackendError`].

use std::path::PathBuf;

use corral_core::BackendError;

use crate::model_dir::fetch_command;
use crate::ModelKind;

/// What to do instead, for [`EmbedError::WrongTask`].
fn wrong_task_hint(kind: ModelKind) -> String {
    match kind {
        ModelKind::Embed => "it has no sequence-classification head, so it cannot rerank or \
                             classify; serve it as `embed` (EmbedBackend)"
            .to_owned(),
        other => format!(
            "it scores texts or pairs with its classification head; serve it as `{other}` \
             (ScoreBackend / Scorer), not as an embedder"
        ),
    }
}

/// Everything that can go wrong while locating, fetching, loading or running
/// an embedding model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory does not exist or lacks files the model needs.
    #[error(
        "model directory {} is not usable: {problem}. Run `{}` to put \
         all-MiniLM-L6-v2 there (add `--dest <dir>` for another directory), or point \
         --model-dir / CORRAL_MODEL_DIR at a sentence-transformers BERT model directory \
         (config.json, tokenizer.json, model.safetensors)",
        dir.display(),
        fetch_command()
    )]
    ModelDir {
        /// The directory that was looked at.
        dir: PathBuf,
        /// What is wrong with it (missing files, not a directory, …).
        problem: String,
    },
    /// A configuration file exists but cannot be used.
    #[error("{}: {message}", path.display())]
    Config {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The tokenizer failed to load.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An input cannot be embedded (the tokenizer refused it, or its ids
    /// do not fit the model); the caller should not retry it.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// candle failed while loading weights or running the forward pass.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The fast forward pass refused the model or the batch.
    #[error("fast encoder: {0}")]
    Fast(#[from] crate::fast::FastBertError),
    /// The compute thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
    /// Downloading or unpacking the default model failed.
    #[error("fetching the model: {0}")]
    Fetch(String),
    /// The model directory holds a model for another task than the one it
    /// was loaded for: a reranker or classifier loaded as an embedder
    /// (its head would be dropped and the vectors would mean nothing), or
    /// an embedder loaded as a scorer.
    #[error(
        "model directory {} holds a {architecture} ({kind} model): {}",
        dir.display(),
        wrong_task_hint(*kind)
    )]
    WrongTask {
        /// The model directory.
        dir: PathBuf,
        /// What the model is, as its `config.json` declares it.
        kind: ModelKind,
        /// The architecture `config.json` names.
        architecture: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl EmbedError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<EmbedError> for BackendError {
    /// Input errors (tokenizing, ids the model cannot take) become
    /// `InvalidInput`, everything else a backend failure.
    fn from(err: EmbedError) -> Self {
        match &err {
            EmbedError::InvalidInput(_)
            | EmbedError::Fast(crate::fast::FastBertError::Input(_)) => {
                BackendError::invalid_input(err.to_string())
            }
            _ => BackendError::new(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::BackendErrorKind;

    #[test]
    fn input_errors_map_to_invalid_input_and_the_rest_to_failed() {
        let kind = |e: EmbedError| BackendError::from(e).kind();
        assert_eq!(
            kind(EmbedError::InvalidInput("x".into())),
            BackendErrorKind::InvalidInput
        );
        assert_eq!(
            kind(EmbedError::Fast(crate::fast::FastBertError::Input(
                "x".into()
            ))),
            BackendErrorKind::InvalidInput
        );
        assert_eq!(
            kind(EmbedError::Tokenizer("loading".into())),
            BackendErrorKind::Failed
        );
        assert_eq!(
            kind(EmbedError::ThreadPool("x".into())),
            BackendErrorKind::Failed
        );
    }

    #[test]
    fn wrong_task_names_the_architecture_and_the_task_to_serve() {
        let err = EmbedError::WrongTask {
            dir: "/m".into(),
            kind: ModelKind::Rerank,
            architecture: "BertForSequenceClassification".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("BertForSequenceClassification"), "{msg}");
        assert!(msg.contains("`rerank`"), "{msg}");
        assert!(msg.contains("ScoreBackend"), "{msg}");
        let err = EmbedError::WrongTask {
            dir: "/m".into(),
            kind: ModelKind::Embed,
            architecture: "BertModel".into(),
        };
        let msg = err.to_string();
        assert!(
            msg.contains("BertModel") && msg.contains("`embed`"),
            "{msg}"
        );
    }
}
