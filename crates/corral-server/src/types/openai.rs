//! OpenAI's embeddings API (`POST /v1/embeddings`, and `POST /embeddings`
//! as TEI serves it): the body, parsed into an [`EmbedRequest`], and the
//! answer.

use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

use super::{
    from_body, prompt_choice, required, BodySchema, EmbedRequest, Inputs, OneOf, OverLimit, Usage,
    INPUTS_SHAPE,
};
use crate::error::{ApiError, Dialect};

/// How OpenAI's answer carries each vector (`encoding_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Encoding {
    /// An array of numbers.
    #[default]
    Float,
    /// The little-endian `f32` bytes, in base64.
    Base64,
}

const ENCODING_FORMAT: &str = "\"float\" or \"base64\"";

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let which = deserializer.deserialize_str(OneOf {
            names: &["float", "base64"],
            ignore_case: false,
            expected: ENCODING_FORMAT,
        })?;
        Ok(if which == 0 {
            Self::Float
        } else {
            Self::Base64
        })
    }
}

/// `POST /v1/embeddings`'s body, as OpenAI defines it, with Corral's
/// `prompt_name` and `prompt` (TEI's, for sentence-transformers prompts).
/// Other fields are ignored; `null` is the same as absent.
#[derive(Deserialize)]
struct OpenAiBody {
    #[serde(default)]
    input: Option<Inputs>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<Encoding>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    /// Checked to be a string, as OpenAI does; not used.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

/// What a field must be, in the sentence an error about it gives.
fn expectation(field: &str) -> Option<&'static str> {
    Some(match field {
        "input" => INPUTS_SHAPE,
        "model" | "user" | "prompt_name" | "prompt" => "a string",
        "encoding_format" => ENCODING_FORMAT,
        "dimensions" => "a positive integer",
        _ => return None,
    })
}

/// Parses an OpenAI embeddings body.
pub(super) fn parse_embed(body: &[u8]) -> Result<EmbedRequest, ApiError> {
    let dialect = Dialect::OpenAi;
    let b: OpenAiBody = from_body(dialect, body, expectation)?;
    Ok(EmbedRequest {
        dialect,
        model: b.model,
        inputs: required(dialect, b.input)?,
        over_limit: OverLimit::Refuse,
        dimensions: b.dimensions,
        prompt: prompt_choice(dialect, b.prompt_name, b.prompt)?,
        normalize: true,
        encoding: b.encoding_format.unwrap_or_default(),
    })
}

/// `POST /v1/embeddings`'s answer, as OpenAI defines it. The fields are in
/// the order the answer has always had them (alphabetical), so that its
/// bytes do not change.
#[derive(Serialize)]
pub(crate) struct OpenAiResponse {
    data: Vec<OpenAiEmbedding>,
    model: String,
    object: &'static str,
    usage: Usage,
}

#[derive(Serialize)]
struct OpenAiEmbedding {
    embedding: Embedding,
    index: usize,
    object: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    /// Written as `f64`s, as the answer always has been (the `f32`'s exact
    /// value; a client reading `f64`s gets the same numbers as before).
    Float(#[serde(serialize_with = "as_f64s")] Vec<f32>),
    Base64(String),
}

fn as_f64s<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|&x| f64::from(x)))
}

impl OpenAiResponse {
    /// The answer for `vectors` from `model`, which cost `tokens`.
    pub(crate) fn new(
        model: String,
        vectors: Vec<Vec<f32>>,
        tokens: usize,
        encoding: Encoding,
    ) -> Self {
        use base64::Engine as _;
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| OpenAiEmbedding {
                embedding: match encoding {
                    Encoding::Float => Embedding::Float(v),
                    Encoding::Base64 => {
                        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                },
                index,
                object: "embedding",
            })
            .collect();
        Self {
            data,
            model,
            object: "list",
            usage: Usage::of(tokens),
        }
    }
}

/// `POST /v1/embeddings`'s body.
pub(crate) fn embed_schema() -> BodySchema {
    BodySchema::of::<OpenAiBody>(expectation)
}
