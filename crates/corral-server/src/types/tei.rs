//! Text Embeddings Inference's API: `POST /embed`, `/rerank` (with
//! `texts`), `/predict`, `/tokenize`, `/decode` — the bodies, parsed once,
//! and the answers, in TEI's shapes.

use std::fmt;

use corral_embed::TruncationSide;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{
    from_body, non_empty, present, prompt_choice, required, BodySchema, EmbedRequest, Encoding,
    Inputs, OneOf, OverLimit, PredictRequest, Prediction, RerankRequest, Sequence, Texts,
    INPUTS_SHAPE, TEXTS_SHAPE,
};
use crate::error::{ApiError, Dialect};
use crate::model::TokenSpan;

const TRUNCATION_DIRECTION: &str = "\"Right\" or \"Left\"";

/// TEI's `truncation_direction`: `"Right"` or `"Left"`, in any case.
struct Direction(TruncationSide);

impl<'de> Deserialize<'de> for Direction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let which = deserializer.deserialize_str(OneOf {
            names: &["right", "left"],
            ignore_case: true,
            expected: TRUNCATION_DIRECTION,
        })?;
        Ok(Self(if which == 0 {
            TruncationSide::Right
        } else {
            TruncationSide::Left
        }))
    }
}

/// `truncate` and `truncation_direction` as one rule.
fn over_limit(truncate: Option<bool>, direction: Option<Direction>) -> OverLimit {
    if truncate.unwrap_or(false) {
        OverLimit::Truncate(direction.map_or(TruncationSide::Right, |d| d.0))
    } else {
        OverLimit::Refuse
    }
}

const PREDICT_SHAPE: &str = "a string, a pair of strings [string, string], or a batch of \
                             texts and pairs [[string], [string, string], ...]";
const IDS_SHAPE: &str = "an array of token ids or an array of arrays of token ids";

/// What a field of a TEI body must be, in the sentence an error about it
/// gives.
fn expectation(field: &str) -> Option<&'static str> {
    Some(match field {
        "inputs" => INPUTS_SHAPE,
        "model" | "query" | "prompt_name" | "prompt" => "a string",
        "dimensions" => "a positive integer",
        "texts" => "an array of strings",
        "normalize"
        | "truncate"
        | "raw_scores"
        | "return_text"
        | "add_special_tokens"
        | "skip_special_tokens" => "a boolean",
        "truncation_direction" => TRUNCATION_DIRECTION,
        "ids" => IDS_SHAPE,
        _ => return None,
    })
}

/// `/predict`'s and `/tokenize`'s `inputs` have shapes of their own.
fn predict_expectation(field: &str) -> Option<&'static str> {
    if field == "inputs" {
        Some(PREDICT_SHAPE)
    } else {
        expectation(field)
    }
}

fn tokenize_expectation(field: &str) -> Option<&'static str> {
    if field == "inputs" {
        Some(TEXTS_SHAPE)
    } else {
        expectation(field)
    }
}

/// `POST /embed`'s body. Other fields are ignored; `null` is the same as
/// absent.
#[derive(Deserialize)]
struct EmbedBody {
    #[serde(default)]
    inputs: Option<Inputs>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<Direction>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

/// Parses a TEI `/embed` body.
pub(super) fn parse_embed(body: &[u8]) -> Result<EmbedRequest, ApiError> {
    let dialect = Dialect::Tei;
    let b: EmbedBody = from_body(dialect, body, expectation)?;
    Ok(EmbedRequest {
        dialect,
        model: b.model,
        inputs: required(dialect, b.inputs)?,
        over_limit: over_limit(b.truncate, b.truncation_direction),
        dimensions: b.dimensions,
        prompt: prompt_choice(dialect, b.prompt_name, b.prompt)?,
        normalize: b.normalize.unwrap_or(true),
        encoding: Encoding::Float,
    })
}

/// `POST /rerank`'s body, TEI's shape.
#[derive(Deserialize)]
struct RerankBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    raw_scores: Option<bool>,
    #[serde(default)]
    return_text: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<Direction>,
}

/// Parses a TEI `/rerank` body.
pub(crate) fn parse_rerank(body: &[u8]) -> Result<RerankRequest, ApiError> {
    let dialect = Dialect::Tei;
    let b: RerankBody = from_body(dialect, body, expectation)?;
    Ok(RerankRequest {
        dialect,
        model: b.model,
        query: present(dialect, "query", b.query)?,
        documents: non_empty(dialect, "texts", b.texts)?,
        over_limit: over_limit(b.truncate, b.truncation_direction),
        raw_scores: b.raw_scores.unwrap_or(false),
        return_documents: b.return_text.unwrap_or(false),
        top_n: None,
    })
}

/// `/predict`'s `inputs`: a text, a pair, or a batch of texts (`[text]`) and
/// pairs; whether it was a batch.
struct PredictInputs(Vec<Sequence>, bool);

impl<'de> Deserialize<'de> for PredictInputs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One element of the outer array: a string (then the array is one
        /// text or a pair) or an array (then it is a batch).
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Element {
            Text(String),
            Sequence(Vec<String>),
        }

        fn sequence<E: de::Error>(mut texts: Vec<String>) -> Result<Sequence, E> {
            match texts.len() {
                1 => Ok(Sequence::Single(texts.remove(0))),
                2 => {
                    let second = texts.pop().unwrap_or_default();
                    Ok(Sequence::Pair(texts.remove(0), second))
                }
                n => Err(E::invalid_length(
                    n,
                    &"a text [string] or a pair [string, string]",
                )),
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PredictInputs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PREDICT_SHAPE)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PredictInputs, E> {
                Ok(PredictInputs(vec![Sequence::Single(v.to_owned())], false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PredictInputs, A::Error> {
                match seq.next_element::<Element>()? {
                    None => Ok(PredictInputs(Vec::new(), true)),
                    Some(Element::Text(first)) => {
                        let second: Option<String> = seq.next_element()?;
                        if seq.next_element::<IgnoredString>()?.is_some() {
                            return Err(de::Error::invalid_length(3, &self));
                        }
                        Ok(PredictInputs(
                            vec![match second {
                                Some(second) => Sequence::Pair(first, second),
                                None => Sequence::Single(first),
                            }],
                            false,
                        ))
                    }
                    Some(Element::Sequence(first)) => {
                        let mut all = vec![sequence(first)?];
                        while let Some(next) = seq.next_element::<Vec<String>>()? {
                            all.push(sequence(next)?);
                        }
                        Ok(PredictInputs(all, true))
                    }
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Any one value, read and dropped (a third element of a pair).
struct IgnoredString;

impl<'de> Deserialize<'de> for IgnoredString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(deserializer).map(|_| Self)
    }
}

/// `POST /predict`'s body.
#[derive(Deserialize)]
struct PredictBody {
    #[serde(default)]
    inputs: Option<PredictInputs>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    raw_scores: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<Direction>,
}

/// Parses a TEI `/predict` body.
pub(crate) fn parse_predict(body: &[u8]) -> Result<PredictRequest, ApiError> {
    let dialect = Dialect::Tei;
    let b: PredictBody = from_body(dialect, body, predict_expectation)?;
    let PredictInputs(inputs, batch) = present(dialect, "inputs", b.inputs)?;
    Ok(PredictRequest {
        dialect,
        model: b.model,
        inputs: non_empty(dialect, "inputs", Some(inputs))?,
        batch,
        over_limit: over_limit(b.truncate, b.truncation_direction),
        raw_scores: b.raw_scores.unwrap_or(false),
    })
}

/// `POST /tokenize`'s body.
#[derive(Deserialize)]
struct TokenizeBody {
    #[serde(default)]
    inputs: Option<Texts>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    add_special_tokens: Option<bool>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

/// A `/tokenize` request: the texts, whether to list the special tokens,
/// the prompt put before each text (as `/embed` puts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenizeRequest {
    /// The model it names; `None` for the default one.
    pub(crate) model: Option<String>,
    /// At least one text.
    pub(crate) texts: Vec<String>,
    /// List the special tokens too (default `true`).
    pub(crate) add_special_tokens: bool,
    /// The prompt, chosen as on `/embed` (the model's default when
    /// neither `prompt_name` nor `prompt` is given).
    pub(crate) prompt: corral_embed::Prompt,
}

/// Parses a TEI `/tokenize` body.
pub(crate) fn parse_tokenize(body: &[u8]) -> Result<TokenizeRequest, ApiError> {
    let dialect = Dialect::Tei;
    let b: TokenizeBody = from_body(dialect, body, tokenize_expectation)?;
    Ok(TokenizeRequest {
        model: b.model,
        texts: non_empty(dialect, "inputs", b.inputs.map(|t| t.0))?,
        add_special_tokens: b.add_special_tokens.unwrap_or(true),
        prompt: prompt_choice(dialect, b.prompt_name, b.prompt)?,
    })
}

/// `/tokenize`'s answer: the tokens of each text.
pub(crate) type TokenizeResponse = Vec<Vec<TokenSpan>>;

/// `/decode`'s `ids`: one list of ids, or several.
struct IdLists(Vec<Vec<u32>>);

impl<'de> Deserialize<'de> for IdLists {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Inputs::deserialize(deserializer)? {
            Inputs::Ids(lists) => Ok(Self(lists)),
            Inputs::Texts(t) if t.is_empty() => Ok(Self(Vec::new())),
            Inputs::Texts(_) => Err(de::Error::invalid_type(
                de::Unexpected::Other("text"),
                &IDS_SHAPE,
            )),
        }
    }
}

/// `POST /decode`'s body.
#[derive(Deserialize)]
struct DecodeBody {
    #[serde(default)]
    ids: Option<IdLists>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    skip_special_tokens: Option<bool>,
}

/// A `/decode` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeRequest {
    /// The model it names; `None` for the default one.
    pub(crate) model: Option<String>,
    /// At least one list of ids.
    pub(crate) ids: Vec<Vec<u32>>,
    /// Leave the special tokens out (default `true`).
    pub(crate) skip_special_tokens: bool,
}

/// Parses a TEI `/decode` body.
pub(crate) fn parse_decode(body: &[u8]) -> Result<DecodeRequest, ApiError> {
    let dialect = Dialect::Tei;
    let b: DecodeBody = from_body(dialect, body, expectation)?;
    Ok(DecodeRequest {
        model: b.model,
        ids: non_empty(dialect, "ids", b.ids.map(|i| i.0))?,
        skip_special_tokens: b.skip_special_tokens.unwrap_or(true),
    })
}

/// One entry of `/rerank`'s answer.
#[derive(Debug, Serialize)]
pub(crate) struct Rank {
    /// The document's place in `texts`.
    pub(crate) index: usize,
    /// The document, when `return_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    /// Its score.
    pub(crate) score: f32,
}

/// `/predict`'s answer: every label, best first, for one input; a list of
/// those for a batch.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum PredictResponse {
    /// One text or pair.
    Single(Vec<Prediction>),
    /// A batch.
    Batch(Vec<Vec<Prediction>>),
}

/// One non-zero entry of a sparse vector, as TEI's `/embed_sparse`
/// answers it.
#[derive(Debug, Serialize)]
pub(crate) struct SparseValue {
    /// Its vocabulary id.
    pub(crate) index: u32,
    /// Its weight.
    pub(crate) value: f32,
}

/// `/embed_sparse`'s answer: per input, its non-zero entries, indices
/// ascending.
pub(crate) fn sparse_rows(vectors: Vec<corral_embed::SparseVector>) -> Vec<Vec<SparseValue>> {
    vectors
        .into_iter()
        .map(|v| {
            v.indices
                .into_iter()
                .zip(v.values)
                .map(|(index, value)| SparseValue { index, value })
                .collect()
        })
        .collect()
}

/// `POST /embed`'s body (and `/embed_sparse`'s).
pub(crate) fn embed_schema() -> BodySchema {
    BodySchema::of::<EmbedBody>(expectation)
}

/// `POST /rerank`'s body, TEI's shape.
pub(crate) fn rerank_schema() -> BodySchema {
    BodySchema::of::<RerankBody>(expectation)
}

/// `POST /predict`'s body.
pub(crate) fn predict_schema() -> BodySchema {
    BodySchema::of::<PredictBody>(predict_expectation)
}

/// `POST /tokenize`'s body.
pub(crate) fn tokenize_schema() -> BodySchema {
    BodySchema::of::<TokenizeBody>(tokenize_expectation)
}

/// `POST /decode`'s body.
pub(crate) fn decode_schema() -> BodySchema {
    BodySchema::of::<DecodeBody>(expectation)
}

#[cfg(test)]
mod tests {
    use super::super::rerank_dialect;
    use super::*;
    use serde_json::json;

    fn predict(inputs: serde_json::Value) -> (Vec<Sequence>, bool) {
        let r = parse_predict(json!({ "inputs": inputs }).to_string().as_bytes()).unwrap();
        (r.inputs, r.batch)
    }

    fn single(t: &str) -> Sequence {
        Sequence::Single(t.into())
    }

    fn pair(a: &str, b: &str) -> Sequence {
        Sequence::Pair(a.into(), b.into())
    }

    /// As TEI reads `inputs`: a string or `[a]` is one text, `[a, b]` one
    /// pair, an array of arrays a batch of texts and pairs.
    #[test]
    fn predict_inputs_are_a_text_a_pair_or_a_batch() {
        assert_eq!(predict(json!("a")), (vec![single("a")], false));
        assert_eq!(predict(json!(["a"])), (vec![single("a")], false));
        assert_eq!(predict(json!(["a", "b"])), (vec![pair("a", "b")], false));
        assert_eq!(
            predict(json!([["a"], ["b", "c"]])),
            (vec![single("a"), pair("b", "c")], true)
        );
        for bad in [
            json!(["a", "b", "c"]),
            json!([["a", "b", "c"]]),
            json!([["a"], "b"]),
            json!([1]),
        ] {
            let e = parse_predict(json!({ "inputs": bad }).to_string().as_bytes()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("inputs"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_rerank_body_is_cohere_s_only_with_documents_and_no_texts() {
        for (body, dialect) in [
            (json!({"query": "q", "documents": ["a"]}), Dialect::Cohere),
            (json!({"query": "q", "texts": ["a"]}), Dialect::Tei),
            (
                json!({"query": "q", "texts": ["a"], "documents": ["a"]}),
                Dialect::Tei,
            ),
            (json!({"query": "q", "documents": null}), Dialect::Tei),
            (json!(["documents"]), Dialect::Tei),
        ] {
            assert_eq!(
                rerank_dialect(body.to_string().as_bytes()),
                dialect,
                "{body}"
            );
        }
        assert_eq!(rerank_dialect(b"{not json"), Dialect::Tei);
    }

    #[test]
    fn decode_takes_one_list_or_several_and_defaults_to_skipping_specials() {
        let r = parse_decode(br#"{"ids": [1, 2]}"#).unwrap();
        assert_eq!((r.ids, r.skip_special_tokens), (vec![vec![1, 2]], true));
        let r = parse_decode(br#"{"ids": [[1], []], "skip_special_tokens": false}"#).unwrap();
        assert_eq!(
            (r.ids, r.skip_special_tokens),
            (vec![vec![1], vec![]], false)
        );
        let r = parse_tokenize(br#"{"inputs": "a"}"#).unwrap();
        assert_eq!(
            (r.texts, r.add_special_tokens),
            (vec!["a".to_owned()], true)
        );
    }
}
