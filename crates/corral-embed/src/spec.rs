//! What to load: [`EmbedSpec`] (model directory and options), the
//! [`Pooling`] modes and the forward-pass [`Engine`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::model_dir::resolve_model_dir;
use crate::EmbedError;

/// How the token vectors of one text become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The mean of the real (non-padding) tokens' vectors; what
    /// all-MiniLM-L6-v2 uses.
    Mean,
    /// The `[CLS]` token's vector; what the bge models use.
    Cls,
    /// The last token's vector (the last real one, special tokens
    /// included), as sentence-transformers' `pooling_mode_lasttoken`.
    LastToken,
    /// SPLADE: not a dense vector but a sparse one over the vocabulary,
    /// the largest `log(1 + ReLU(logit))` of each entry over the text's
    /// tokens, from a masked-language model's logits. What a directory
    /// whose `modules.json` names a `SpladePooling` module declares; asked
    /// for on another directory, it needs a BERT masked-language model
    /// (an architecture `BertForMaskedLM`). Such a spec is served by
    /// [`crate::SparseEncoder`] (and [`crate::SparseBackend`]), never by
    /// [`crate::Embedder`].
    Splade,
}

impl FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "lasttoken" | "last-token" | "last_token" => Ok(Self::LastToken),
            "splade" => Ok(Self::Splade),
            other => Err(format!(
                "unknown pooling {other:?} (mean, cls, lasttoken, splade)"
            )),
        }
    }
}

/// Which forward pass runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// Corral's own BERT / XLM-RoBERTa forward ([`crate::fast::FastBert`]):
    /// fused CPU kernels, padding never computed. Falls back to candle, with
    /// a warning, for a model it does not support (e.g. no safetensors, or
    /// an MPNet, NomicBert, ModernBERT or Qwen3 model).
    #[default]
    Fast,
    /// candle's: candle-transformers' BERT, XLM-RoBERTa, NomicBert,
    /// ModernBERT or Qwen3, or Corral's MPNet on candle's tensor ops.
    Candle,
}

impl FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fast" => Ok(Self::Fast),
            "candle" => Ok(Self::Candle),
            other => Err(format!("unknown engine {other:?} (fast, candle)")),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fast => "fast",
            Self::Candle => "candle",
        })
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::LastToken => "lasttoken",
            Self::Splade => "splade",
        })
    }
}

/// The arithmetic of the dense layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quantize {
    /// fp32 throughout (the default).
    #[default]
    None,
    /// 8-bit integer dense layers in the fast engine (weights per output
    /// channel, activations per token; attention, softmax, layer norms and
    /// GELU stay fp32). Needs AVX2; without it, and on the candle engine,
    /// the model runs in fp32 with a warning.
    Int8,
    /// bfloat16 dense layers in the fast engine: weights rounded to bf16
    /// at load, activations as each product starts, products summed in
    /// fp32 (attention, softmax, layer norms and GELU stay fp32). Needs
    /// AVX-512 BF16 (AMD Zen 4 and later, Intel Cooper Lake and Sapphire
    /// Rapids and later); without it, and on the candle engine, the model
    /// runs in fp32 with a warning.
    Bf16,
}

impl FromStr for Quantize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "fp32" | "f32" => Ok(Self::None),
            "int8" | "i8" => Ok(Self::Int8),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => Err(format!("unknown quantization {other:?} (none, int8, bf16)")),
        }
    }
}

impl fmt::Display for Quantize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
        })
    }
}

/// Tokens per forward pass unless configured otherwise (see
/// [`EmbedSpec::max_forward_tokens`]).
pub const DEFAULT_MAX_FORWARD_TOKENS: usize = 1024;

/// What an embedding worker loads; shared by all workers of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedSpec {
    /// A directory with `config.json`, `tokenizer.json` and
    /// `model.safetensors` (or `pytorch_model.bin`), and optionally the
    /// sentence-transformers files.
    pub model_dir: PathBuf,
    /// Pooling to use instead of the one the model directory declares
    /// (`1_Pooling/config.json`, or a `SpladePooling` module; mean when it
    /// declares none). A dense pooling does not apply to a SPLADE
    /// directory, nor [`Pooling::Splade`] to a model without a
    /// masked-language head: loading refuses them by name.
    pub pooling: Option<Pooling>,
    /// Scale every embedding to unit L2 norm (default `true`).
    pub normalize: bool,
    /// A lower maximum sequence length than the model's (word pieces,
    /// special tokens included); the model's own limit is never exceeded.
    pub max_seq_length: Option<usize>,
    /// Tokens per forward pass, counted as the engine computes them — the
    /// sum of the texts' tokens for the fast engine (which packs them),
    /// rows × the longest for candle's (which pads) — which bounds the
    /// memory of one pass (default [`DEFAULT_MAX_FORWARD_TOKENS`]). The pool
    /// forms its batches within it (`Backend::batching`), so a batch is one
    /// forward pass; tokens are the pool's cheap estimate for texts.
    pub max_forward_tokens: usize,
    /// Which forward pass runs the model (default [`Engine::Fast`]).
    pub engine: Engine,
    /// The dense layers' arithmetic (default [`Quantize::None`], fp32).
    pub quantize: Quantize,
    /// The prompt put before every text (default [`Prompt::ModelDefault`]:
    /// the model's `default_prompt_name`, if it declares one).
    pub prompt: Prompt,
    /// Matryoshka: keep this many leading dimensions of every embedding,
    /// then re-normalise (when [`EmbedSpec::normalize`]). Default: the
    /// `truncate_dim` of the model's `config_sentence_transformers.json`,
    /// else the full hidden size. At most the hidden size.
    pub truncate_dim: Option<usize>,
}

/// Which prompt an embedder puts before each text, as sentence-transformers
/// does: the prompt string is prepended to the text before tokenising, so
/// the prompt's word pieces count toward the maximum length (and the
/// usage), and the text is cut after them. An empty prompt is no prompt.
/// Pre-tokenised ids ([`crate::EmbedInput::Tokens`]) never get one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Prompt {
    /// The model's `default_prompt_name` from
    /// `config_sentence_transformers.json`; none if it declares none.
    #[default]
    ModelDefault,
    /// The prompt of this name in the model's `prompts`; loading fails if
    /// it has none of that name.
    Named(String),
    /// This prompt string.
    Text(String),
    /// No prompt, whatever the model's default.
    None,
}

/// A model's prompts: `prompts` and `default_prompt_name` of its
/// `config_sentence_transformers.json` (empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prompts {
    pub(crate) table: BTreeMap<String, String>,
    pub(crate) default_name: Option<String>,
}

impl Prompts {
    /// The prompt string named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.table.get(name).map(String::as_str)
    }

    /// The prompts' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(String::as_str)
    }

    /// The model's `default_prompt_name`.
    pub fn default_name(&self) -> Option<&str> {
        self.default_name.as_deref()
    }

    /// The prompt string `choice` picks (`None` for no prompt, an empty
    /// one included), `default` standing for [`Prompt::ModelDefault`].
    ///
    /// # Errors
    /// A sentence naming the known prompts, for a name not among them.
    pub(crate) fn resolve(
        &self,
        choice: &Prompt,
        default: Option<&str>,
    ) -> Result<Option<String>, String> {
        let text = match choice {
            Prompt::ModelDefault => default.map(str::to_owned),
            Prompt::None => None,
            Prompt::Text(t) => Some(t.clone()),
            Prompt::Named(name) => Some(self.get(name).map(str::to_owned).ok_or_else(|| {
                let known: Vec<&str> = self.names().collect();
                if known.is_empty() {
                    format!("unknown prompt name {name:?}: the model declares no prompts")
                } else {
                    format!(
                        "unknown prompt name {name:?}: the model's prompts are {}",
                        known.join(", ")
                    )
                }
            })?),
        };
        Ok(text.filter(|t| !t.is_empty()))
    }
}

impl EmbedSpec {
    /// The model in `model_dir` with its own pooling, normalisation on.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: model_dir.into(),
            pooling: None,
            normalize: true,
            max_seq_length: None,
            max_forward_tokens: DEFAULT_MAX_FORWARD_TOKENS,
            engine: Engine::default(),
            quantize: Quantize::default(),
            prompt: Prompt::default(),
            truncate_dim: None,
        }
    }

    /// The default model (see [`crate::model_dir::default_model_dir`]).
    ///
    /// # Errors
    /// [`EmbedError::ModelDir`], naming the command that fetches the model,
    /// when it is missing or incomplete.
    pub fn default_model() -> Result<Self, EmbedError> {
        Ok(Self::new(resolve_model_dir(None)?))
    }

    /// Checks, without loading the weights, that the model directory is
    /// complete and its configuration and tokenizer are usable — so that a
    /// caller can report a bad directory before starting a pool whose
    /// workers would fail to load.
    ///
    /// # Errors
    /// As [`crate::Embedder::load`], minus weight errors (a prompt name the
    /// model lacks and a bad `truncate_dim` included).
    pub fn validate(&self) -> Result<(), EmbedError> {
        crate::EmbedTokenizer::load(self)?;
        if self.model_kind()? == crate::ModelKind::Embed {
            self.model_info()?;
        }
        Ok(())
    }

    /// This spec with `pooling` instead of the model's own.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    /// Whether this spec serves sparse (SPLADE) vectors: its directory's
    /// `modules.json` names a `SpladePooling` module and [`Self::pooling`]
    /// does not override it, or [`Self::pooling`] is [`Pooling::Splade`].
    /// Reads the configuration only.
    ///
    /// # Errors
    /// [`EmbedError::Config`] for a dense pooling on a SPLADE directory, or
    /// [`Pooling::Splade`] on a model that is not a BERT masked-language
    /// model (no `…ForMaskedLM` architecture), each naming the pooling.
    pub(crate) fn serves_sparse(&self) -> Result<bool, EmbedError> {
        let dir = &self.model_dir;
        let declared = crate::sparse::is_splade(dir)?;
        match self.pooling {
            None => Ok(declared),
            Some(Pooling::Splade) => {
                if !declared {
                    crate::config::check_mlm_head(dir)?;
                }
                Ok(true)
            }
            Some(dense) if declared => Err(EmbedError::config(
                dir.join("modules.json"),
                format!(
                    "pooling {dense} does not apply to a SPLADE model (its modules.json \
                     declares SpladePooling: sparse vectors over the vocabulary); \
                     serve it with pooling splade"
                ),
            )),
            Some(_) => Ok(false),
        }
    }

    /// This spec with another forward-pass engine.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// This spec with another dense-layer arithmetic.
    pub fn with_quantize(mut self, quantize: Quantize) -> Self {
        self.quantize = quantize;
        self
    }

    /// This spec with another prompt choice.
    pub fn with_prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = prompt;
        self
    }

    /// This spec keeping the first `dim` dimensions of each embedding
    /// (Matryoshka), re-normalised when normalisation is on.
    pub fn with_truncate_dim(mut self, dim: usize) -> Self {
        self.truncate_dim = Some(dim);
        self
    }

    /// This spec with L2 normalisation on or off.
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Quantize;

    #[test]
    fn quantize_names_round_trip_and_an_unknown_one_lists_the_choices() {
        for q in [Quantize::None, Quantize::Int8, Quantize::Bf16] {
            assert_eq!(q.to_string().parse::<Quantize>(), Ok(q));
        }
        assert_eq!("FP32".parse::<Quantize>(), Ok(Quantize::None));
        assert_eq!("bfloat16".parse::<Quantize>(), Ok(Quantize::Bf16));
        let err = "fp16".parse::<Quantize>().unwrap_err();
        assert!(err.contains("none, int8, bf16"), "{err}");
    }
}
