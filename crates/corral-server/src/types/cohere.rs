//! Cohere's rerank API as Cohere, Jina and infinity serve it
//! (`POST /v1/rerank`, and `POST /rerank` with `documents`): the body,
//! parsed once into a [`RerankRequest`], and the answer.

use std::fmt;

use corral_embed::TruncationSide;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{from_body, non_empty, present, BodySchema, OverLimit, RerankRequest, Usage};
use crate::error::{ApiError, Dialect};

const DOCUMENTS_SHAPE: &str = "an array of strings or of objects with a string `text`";

/// What a field must be, in the sentence an error about it gives.
fn expectation(field: &str) -> Option<&'static str> {
    Some(match field {
        "query" | "model" => "a string",
        "documents" => DOCUMENTS_SHAPE,
        "top_n" => "a positive integer",
        "return_documents" | "raw_scores" => "a boolean",
        _ => return None,
    })
}

/// One document: a string, or an object whose `text` is one (Cohere's
/// other fields, and Jina's, are ignored).
struct Document(String);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Document;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object with a string `text`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Document, E> {
                Ok(Document(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Document, E> {
                Ok(Document(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
                let mut text = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "text" {
                        text = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                text.map(Document)
                    .ok_or_else(|| de::Error::missing_field("text"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The body.
#[derive(Deserialize)]
struct RerankBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    documents: Option<Vec<Document>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: Option<bool>,
    /// infinity's flag: the raw logit.
    #[serde(default)]
    raw_scores: Option<bool>,
}

/// Parses a Cohere-shaped rerank body. A document over the model's length
/// is cut, as those APIs do; `return_documents` defaults to `false`.
///
/// # Errors
/// 400 naming the field: a wrong type, a missing `query` or `documents`,
/// no documents (`empty`), or `top_n` of 0.
pub(crate) fn parse_rerank(body: &[u8]) -> Result<RerankRequest, ApiError> {
    let dialect = Dialect::Cohere;
    let b: RerankBody = from_body(dialect, body, expectation)?;
    if b.top_n == Some(0) {
        return Err(ApiError::invalid(
            dialect,
            "top_n",
            "`top_n` must be a positive integer (got 0)",
        ));
    }
    Ok(RerankRequest {
        dialect,
        model: b.model,
        query: present(dialect, "query", b.query)?,
        documents: non_empty(dialect, "documents", b.documents)?
            .into_iter()
            .map(|d| d.0)
            .collect(),
        over_limit: OverLimit::Truncate(TruncationSide::Right),
        raw_scores: b.raw_scores.unwrap_or(false),
        return_documents: b.return_documents.unwrap_or(false),
        top_n: b.top_n,
    })
}

/// The answer: results best first, with the tokens it cost.
#[derive(Debug, Serialize)]
pub(crate) struct RerankResponse {
    /// `"rerank"`, as infinity says.
    pub(crate) object: &'static str,
    /// The model that scored.
    pub(crate) model: String,
    /// Best first, at most `top_n`.
    pub(crate) results: Vec<RerankResult>,
    /// Word pieces scored, special tokens included.
    pub(crate) usage: Usage,
}

/// One document's result.
#[derive(Debug, Serialize)]
pub(crate) struct RerankResult {
    /// Its place in `documents`.
    pub(crate) index: usize,
    /// Its score.
    pub(crate) relevance_score: f32,
    /// The document, when `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) document: Option<DocumentText>,
}

/// A document in an answer, as Cohere and Jina give it.
#[derive(Debug, Serialize)]
pub(crate) struct DocumentText {
    /// The text.
    pub(crate) text: String,
}

/// The Cohere-shaped rerank body.
pub(crate) fn rerank_schema() -> BodySchema {
    BodySchema::of::<RerankBody>(expectation)
}
