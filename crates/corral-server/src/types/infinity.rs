//! infinity's `POST /classify`: the body, parsed once into a
//! [`PredictRequest`], and the answer.

use corral_embed::TruncationSide;
use serde::{Deserialize, Serialize};

use super::{
    from_body, non_empty, BodySchema, OverLimit, PredictRequest, Prediction, Sequence, Texts,
    Usage, TEXTS_SHAPE,
};
use crate::error::{ApiError, Dialect};

/// What a field must be, in the sentence an error about it gives.
fn expectation(field: &str) -> Option<&'static str> {
    Some(match field {
        "input" => TEXTS_SHAPE,
        "model" => "a string",
        "raw_scores" => "a boolean",
        _ => return None,
    })
}

/// The body.
#[derive(Deserialize)]
struct ClassifyBody {
    #[serde(default)]
    input: Option<Texts>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    raw_scores: Option<bool>,
}

/// Parses a `/classify` body. A text over the model's length is cut, as
/// infinity does.
///
/// # Errors
/// 400 naming the field.
pub(crate) fn parse_classify(body: &[u8]) -> Result<PredictRequest, ApiError> {
    let dialect = Dialect::OpenAi;
    let b: ClassifyBody = from_body(dialect, body, expectation)?;
    Ok(PredictRequest {
        dialect,
        model: b.model,
        inputs: non_empty(dialect, "input", b.input.map(|t| t.0))?
            .into_iter()
            .map(Sequence::Single)
            .collect(),
        batch: true,
        over_limit: OverLimit::Truncate(TruncationSide::Right),
        raw_scores: b.raw_scores.unwrap_or(false),
    })
}

/// The answer: every label, best first, for each input.
#[derive(Debug, Serialize)]
pub(crate) struct ClassifyResponse {
    /// `"classify"`.
    pub(crate) object: &'static str,
    /// One list per input, in order.
    pub(crate) data: Vec<Vec<Prediction>>,
    /// The model that scored.
    pub(crate) model: String,
    /// Word pieces scored, special tokens included.
    pub(crate) usage: Usage,
}

/// `POST /classify`'s body.
pub(crate) fn classify_schema() -> BodySchema {
    BodySchema::of::<ClassifyBody>(expectation)
}
