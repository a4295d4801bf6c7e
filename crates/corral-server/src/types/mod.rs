//! The wire types of every dialect (as TEI's `router/src/http/types.rs`):
//! each route's body is deserialised once, by serde, into its dialect's body
//! type — [`openai`], [`tei`], [`cohere`] (rerank as Cohere, Jina and
//! infinity take it), [`infinity`] (classify) — and that becomes the one
//! request the rest of the path works on: an [`EmbedRequest`], a
//! [`RerankRequest`] or a [`PredictRequest`]. The answers' shapes are typed
//! in each dialect's module too.
//!
//! Every error names the field it is about (`param` in OpenAI's body, the
//! message in all): serde reports where it failed (through
//! `serde_path_to_error`), and the field's first path segment picks the
//! sentence that says what the field must be.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Dialect};

pub(crate) mod cohere;
pub(crate) mod infinity;
pub(crate) mod openai;
pub(crate) mod tei;

pub(crate) use openai::Encoding;

/// The inputs of one request, as the client sent them: a string, an array
/// of strings, an array of token ids, or an array of arrays of token ids
/// (OpenAI's `input`, TEI's `inputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inputs {
    /// Texts.
    Texts(Vec<String>),
    /// Token ids without special tokens, one list per input.
    Ids(Vec<Vec<u32>>),
}

impl Inputs {
    /// How many inputs.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Texts(t) => t.len(),
            Self::Ids(i) => i.len(),
        }
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InputsVisitor)
    }
}

/// Reads the shape off the first element, then holds the rest to it, as it
/// streams (no buffering of the body's inputs to try one shape after
/// another).
struct InputsVisitor;

impl<'de> Visitor<'de> for InputsVisitor {
    type Value = Inputs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(INPUTS_SHAPE)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Inputs, E> {
        Ok(Inputs::Texts(vec![v.to_owned()]))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Inputs, E> {
        Ok(Inputs::Texts(vec![v]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs, A::Error> {
        fn rest<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
            seq: &mut A,
            first: T,
        ) -> Result<Vec<T>, A::Error> {
            let mut all = vec![first];
            while let Some(next) = seq.next_element()? {
                all.push(next);
            }
            Ok(all)
        }
        Ok(match seq.next_element::<First>()? {
            None => Inputs::Texts(Vec::new()),
            Some(First::Text(t)) => Inputs::Texts(rest(&mut seq, t)?),
            Some(First::Id(id)) => Inputs::Ids(vec![rest(&mut seq, id)?]),
            Some(First::Ids(ids)) => Inputs::Ids(rest(&mut seq, ids)?),
        })
    }
}

/// The first element of an array of inputs, which sets the array's shape.
enum First {
    Text(String),
    Id(u32),
    Ids(Vec<u32>),
}

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstVisitor;
        impl<'de> Visitor<'de> for FirstVisitor {
            type Value = First;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<First, E> {
                Ok(First::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<First, E> {
                Ok(First::Text(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<First, E> {
                u32::try_from(v)
                    .map(First::Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"a token id"))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element()? {
                    ids.push(id);
                }
                Ok(First::Ids(ids))
            }
        }
        deserializer.deserialize_any(FirstVisitor)
    }
}

const INPUTS_SHAPE: &str = "a string, an array of strings, an array of token ids \
                            or an array of arrays of token ids";

/// Deserialises a string that must be one of `names` (compared as
/// `ignore_case` says), giving the index of the one it is.
struct OneOf {
    names: &'static [&'static str],
    ignore_case: bool,
    expected: &'static str,
}

impl<'de> Visitor<'de> for OneOf {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.names
            .iter()
            .position(|n| {
                if self.ignore_case {
                    n.eq_ignore_ascii_case(v)
                } else {
                    *n == v
                }
            })
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// What to do with an input over the model's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// Refuse the request, naming the input.
    Refuse,
    /// Cut it from this side (a pair: as the model's tokenizer cuts pairs).
    Truncate(corral_embed::TruncationSide),
}

impl OverLimit {
    /// The side the tokenizer cuts from: the asked one, or the right when
    /// an input over the length is to be refused (cut, then found cut).
    pub(crate) fn side(self) -> corral_embed::TruncationSide {
        match self {
            Self::Refuse => corral_embed::TruncationSide::Right,
            Self::Truncate(side) => side,
        }
    }
}

/// One embedding request, whichever dialect it came in: what to embed,
/// how to check it and how to shape the vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmbedRequest {
    /// The API it came in, which names its fields and shapes its answers.
    pub(crate) dialect: Dialect,
    /// The model it names; `None` for the default one.
    pub(crate) model: Option<String>,
    /// At least one input.
    pub(crate) inputs: Inputs,
    /// What to do with an input over the model's length (OpenAI: refuse).
    pub(crate) over_limit: OverLimit,
    /// Keep this many leading dimensions, then re-normalise (when
    /// normalising).
    pub(crate) dimensions: Option<usize>,
    /// The prompt put before each text (`prompt_name` / `prompt`; by
    /// default the one the model is served with). Token ids get none.
    pub(crate) prompt: corral_embed::Prompt,
    /// Scale each vector to unit L2 norm (OpenAI: always; TEI: by default).
    pub(crate) normalize: bool,
    /// How the answer carries the vectors (TEI: always floats).
    pub(crate) encoding: Encoding,
}

impl EmbedRequest {
    /// Parses `body` as `dialect`'s embedding request, once.
    ///
    /// # Errors
    /// A 400 (OpenAI) / 422 (TEI) naming the field that is wrong (`body`
    /// when the body is not a JSON object); a missing inputs field is named
    /// as required; an empty one is TEI's `empty`, 400 in both.
    pub(crate) fn parse(dialect: Dialect, body: &[u8]) -> Result<Self, ApiError> {
        match dialect {
            Dialect::OpenAi | Dialect::Cohere => openai::parse_embed(body),
            Dialect::Tei => tei::parse_embed(body),
        }
    }
}

/// One text or a pair of texts to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// One text.
    Single(String),
    /// A pair (query and document, premise and hypothesis).
    Pair(String, String),
}

/// One rerank request, TEI's or Cohere's: score each document against the
/// query, answer them best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RerankRequest {
    /// The API it came in.
    pub(crate) dialect: Dialect,
    /// The model it names; `None` for the only reranker.
    pub(crate) model: Option<String>,
    /// The query.
    pub(crate) query: String,
    /// At least one document.
    pub(crate) documents: Vec<String>,
    /// What to do with a pair over the model's length (TEI: refuse unless
    /// `truncate`; Cohere: cut).
    pub(crate) over_limit: OverLimit,
    /// The raw logit rather than the model's activation of it.
    pub(crate) raw_scores: bool,
    /// Echo each document in its result.
    pub(crate) return_documents: bool,
    /// Answer only the best this many (Cohere's `top_n`).
    pub(crate) top_n: Option<usize>,
}

/// One classification request, TEI's `/predict` or infinity's `/classify`:
/// every label's score for each text or pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PredictRequest {
    /// The API it came in.
    pub(crate) dialect: Dialect,
    /// The model it names; `None` for the only classifier.
    pub(crate) model: Option<String>,
    /// At least one text or pair.
    pub(crate) inputs: Vec<Sequence>,
    /// Whether the client sent a batch (TEI answers a list of lists then).
    pub(crate) batch: bool,
    /// What to do with an input over the model's length.
    pub(crate) over_limit: OverLimit,
    /// Raw logits rather than the model's activation of them.
    pub(crate) raw_scores: bool,
}

/// Which shape a `POST /rerank` body has: Cohere's (it has `documents`) or
/// TEI's (anything else, errors included). A scan of the body for that one
/// key, before the one parse in that dialect.
pub(crate) fn rerank_dialect(body: &[u8]) -> Dialect {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default)]
        documents: Option<IgnoredAny>,
        #[serde(default)]
        texts: Option<IgnoredAny>,
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Dialect::Tei;
    }
    match serde_json::from_slice::<Keys>(body) {
        Ok(Keys {
            documents: Some(_),
            texts: None,
        }) => Dialect::Cohere,
        _ => Dialect::Tei,
    }
}

/// The model a `POST /` body names, if it names one it can be read from (a
/// scan of the body for that one key; the route's own parse reports every
/// error).
pub(crate) fn named_model(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default)]
        model: Option<String>,
    }
    serde_json::from_slice::<Keys>(body).ok()?.model
}

/// Token usage, as OpenAI, infinity and Jina count it.
#[derive(Debug, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: usize,
    pub(crate) total_tokens: usize,
}

impl Usage {
    /// `tokens` word pieces in, nothing generated.
    pub(crate) fn of(tokens: usize) -> Self {
        Self {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }
    }
}

/// One label's score, in TEI's `/predict` and infinity's `/classify` answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Prediction {
    /// The score.
    pub(crate) score: f32,
    /// The label.
    pub(crate) label: String,
}

/// A string, or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Texts(pub(crate) Vec<String>);

const TEXTS_SHAPE: &str = "a string or an array of strings";

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Texts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(TEXTS_SHAPE)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Texts, E> {
                Ok(Texts(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts, A::Error> {
                let mut all = Vec::new();
                while let Some(t) = seq.next_element()? {
                    all.push(t);
                }
                Ok(Texts(all))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `prompt_name` and `prompt` as one choice: at most one of them.
fn prompt_choice(
    dialect: Dialect,
    name: Option<String>,
    text: Option<String>,
) -> Result<corral_embed::Prompt, ApiError> {
    use corral_embed::Prompt;
    match (name, text) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            dialect,
            "prompt",
            "give `prompt_name` or `prompt`, not both",
        )),
        (Some(name), None) => Ok(Prompt::Named(name)),
        (None, Some(text)) => Ok(Prompt::Text(text)),
        (None, None) => Ok(Prompt::ModelDefault),
    }
}

/// The inputs field's value: present, and not empty.
fn required(dialect: Dialect, inputs: Option<Inputs>) -> Result<Inputs, ApiError> {
    let inputs = present(dialect, dialect.inputs_field(), inputs)?;
    if inputs.is_empty() {
        return Err(ApiError::empty(dialect.inputs_field()));
    }
    Ok(inputs)
}

/// A required field's value: present (`null` is absent).
fn present<T>(dialect: Dialect, field: &str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(dialect, field, format!("`{field}` is required")))
}

/// A required list: present, and not empty.
fn non_empty<T>(dialect: Dialect, field: &str, value: Option<Vec<T>>) -> Result<Vec<T>, ApiError> {
    let value = present(dialect, field, value)?;
    if value.is_empty() {
        return Err(ApiError::empty(field));
    }
    Ok(value)
}

/// What a field of one dialect's body must be, in the sentence an error
/// about it gives; `None` for a field the body does not have.
type Expectation = fn(&str) -> Option<&'static str>;

/// One request body's shape, read off the body type itself: the fields
/// serde reads (from its `Deserialize`), and what each must be (the
/// sentence its errors give) — what `/openapi.json` shows.
#[derive(Clone, Copy)]
pub(crate) struct BodySchema {
    /// The body's fields, as serde names them.
    pub(crate) fields: &'static [&'static str],
    /// What each must be.
    pub(crate) expectation: Expectation,
}

impl BodySchema {
    /// The schema of `T`, a `#[derive(Deserialize)]` struct.
    fn of<T: de::DeserializeOwned>(expectation: Expectation) -> Self {
        Self {
            fields: fields_of::<T>(),
            expectation,
        }
    }
}

/// The fields a derived `Deserialize` struct reads: it hands them to
/// `deserialize_struct`, where this deserializer keeps them and stops.
fn fields_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
    use std::cell::Cell;

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Self
        }
    }

    struct Capture<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Capture(&fields));
    fields.get()
}

/// Deserialises a body that must be one JSON object, naming the field of
/// any error in it (`body` when it is not an object or not JSON).
fn from_body<'de, T: Deserialize<'de>>(
    dialect: Dialect,
    body: &'de [u8],
    expectation: Expectation,
) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // A struct would also deserialise from an array: refuse
        // anything but an object here, as malformed when it is not JSON.
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ApiError::invalid(dialect, "body", "the body must be a JSON object"),
            Err(e) => malformed(dialect, &e),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| field_error(dialect, &e, expectation))?;
    de.end().map_err(|e| malformed(dialect, &e))?;
    Ok(parsed)
}

fn malformed(dialect: Dialect, e: &serde_json::Error) -> ApiError {
    ApiError::invalid(dialect, "body", format!("malformed JSON: {e}"))
}

/// `` `field` must be … (got …) ``, for a value of the wrong type or shape
/// in a known field; anything else is the body's error.
fn field_error(
    dialect: Dialect,
    e: &serde_path_to_error::Error<serde_json::Error>,
    expectation: Expectation,
) -> ApiError {
    let inner = e.inner();
    let field = match e.path().iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) if inner.is_data() => key.as_str(),
        _ => return malformed(dialect, inner),
    };
    let Some(must_be) = expectation(field) else {
        return malformed(dialect, inner);
    };
    // serde's message without serde_json's " at line L column C".
    let full = inner.to_string();
    let detail = full
        .strip_suffix(&format!(
            " at line {} column {}",
            inner.line(),
            inner.column()
        ))
        .unwrap_or(&full);
    // "invalid type: integer `3`, expected a string" says what came in
    // before the comma; the sentence already says what was expected.
    let got = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| detail.strip_prefix(p))
        .and_then(|rest| rest.split_once(", expected ").map(|(got, _)| got));
    let path = e.path().to_string();
    let within = if path == field {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    let why = match got {
        Some(got) => format!("got {got}{within}"),
        None => format!("{detail}{within}"),
    };
    ApiError::invalid(
        dialect,
        field,
        format!("`{field}` must be {must_be} ({why})"),
    )
}

#[cfg(test)]
mod tests {
    use super::openai::OpenAiResponse;
    use super::*;
    use corral_embed::TruncationSide;
    use serde_json::{json, Value};

    fn parse(dialect: Dialect, body: &Value) -> Result<EmbedRequest, ApiError> {
        EmbedRequest::parse(dialect, body.to_string().as_bytes())
    }

    fn inputs(body: Value) -> Inputs {
        parse(Dialect::OpenAi, &json!({ "input": body }))
            .unwrap()
            .inputs
    }

    #[test]
    fn every_input_shape_parses() {
        assert_eq!(inputs(json!("a")), Inputs::Texts(vec!["a".into()]));
        assert_eq!(
            inputs(json!(["a", "b"])),
            Inputs::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(inputs(json!([1, 2])), Inputs::Ids(vec![vec![1, 2]]));
        assert_eq!(
            inputs(json!([[1], [2, 3], []])),
            Inputs::Ids(vec![vec![1], vec![2, 3], vec![]])
        );
        assert_eq!(inputs(json!([u32::MAX])), Inputs::Ids(vec![vec![u32::MAX]]));
    }

    /// Each field of each dialect, given a value of the wrong type or
    /// shape: 400 (OpenAI) / 422 (TEI), `param` the field, and a message
    /// that names it.
    #[test]
    fn a_wrong_value_in_any_field_names_that_field() {
        let openai = [
            (json!({"input": 5.5}), "input"),
            (json!({"input": {}}), "input"),
            (json!({"input": true}), "input"),
            (json!({"input": ["a", 1]}), "input"),
            (json!({"input": [1, "a"]}), "input"),
            (json!({"input": [-1]}), "input"),
            (json!({"input": [4_294_967_296_u64]}), "input"),
            (json!({"input": [[1], "a"]}), "input"),
            (json!({"input": [[1], [-2]]}), "input"),
            (json!({"input": [{}]}), "input"),
            (json!({"input": "a", "model": 3}), "model"),
            (json!({"input": "a", "model": ["m"]}), "model"),
            (
                json!({"input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"input": "a", "encoding_format": "Float"}),
                "encoding_format",
            ),
            (
                json!({"input": "a", "encoding_format": 1}),
                "encoding_format",
            ),
            (json!({"input": "a", "dimensions": -1}), "dimensions"),
            (json!({"input": "a", "dimensions": 2.5}), "dimensions"),
            (json!({"input": "a", "dimensions": "3"}), "dimensions"),
            (json!({"input": "a", "user": 5}), "user"),
            (json!({"input": "a", "prompt_name": 5}), "prompt_name"),
            (json!({"input": "a", "prompt": ["q"]}), "prompt"),
        ];
        let tei = [
            (json!({"inputs": 5.5}), "inputs"),
            (json!({"inputs": ["a", [1]]}), "inputs"),
            (json!({"inputs": "a", "model": false}), "model"),
            (json!({"inputs": "a", "normalize": "yes"}), "normalize"),
            (json!({"inputs": "a", "truncate": 1}), "truncate"),
            (
                json!({"inputs": "a", "truncation_direction": "up"}),
                "truncation_direction",
            ),
            (
                json!({"inputs": "a", "truncation_direction": 0}),
                "truncation_direction",
            ),
            (json!({"inputs": "a", "dimensions": -1}), "dimensions"),
            (json!({"inputs": "a", "prompt_name": true}), "prompt_name"),
            (json!({"inputs": "a", "prompt": 1}), "prompt"),
        ];
        for (dialect, status, cases) in [
            (Dialect::OpenAi, 400, &openai[..]),
            (Dialect::Tei, 422, &tei[..]),
        ] {
            for (body, field) in cases {
                let e = parse(dialect, body).unwrap_err();
                assert_eq!(e.status.as_u16(), status, "{body}");
                assert_eq!(e.param.as_deref(), Some(*field), "{body}: {}", e.message);
                assert!(
                    e.message.starts_with(&format!("`{field}` must be ")),
                    "{body}: {}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn the_message_says_what_came_and_where() {
        let e = parse(Dialect::OpenAi, &json!({"input": "a", "model": 3})).unwrap_err();
        assert_eq!(e.message, "`model` must be a string (got integer `3`)");
        let e = parse(
            Dialect::OpenAi,
            &json!({"input": "a", "encoding_format": "int8"}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "`encoding_format` must be \"float\" or \"base64\" (got string \"int8\")"
        );
        let e = parse(Dialect::OpenAi, &json!({"input": [[1], [2, "x"]]})).unwrap_err();
        assert!(
            e.message.ends_with("(got string \"x\" at `input[1][1]`)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_or_empty_inputs_are_named() {
        for (dialect, field) in [(Dialect::OpenAi, "input"), (Dialect::Tei, "inputs")] {
            for body in [json!({}), json!({ field: null })] {
                let e = parse(dialect, &body).unwrap_err();
                assert_eq!(e.param.as_deref(), Some(field), "{body}");
                assert_eq!(e.message, format!("`{field}` is required"));
            }
            let e = parse(dialect, &json!({ field: [] })).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(e.param.as_deref(), Some(field));
            assert_eq!(e.message, format!("`{field}` must not be empty"));
        }
    }

    #[test]
    fn a_body_that_is_not_one_json_object_is_the_bodys_error() {
        for body in [
            "[1, 2]",
            "[\"a\"]",
            "\"a\"",
            "3",
            "null",
            "",
            "{not json",
            "{\"input\": \"abc",
            "{\"input\": [1, 2",
            "{\"input\": \"a\"} x",
            // A field given twice is ambiguous: refused, not last-wins.
            "{\"input\": \"a\", \"input\": \"b\", \"inputs\": \"a\", \"inputs\": \"b\"}",
        ] {
            for dialect in [Dialect::OpenAi, Dialect::Tei] {
                let e = EmbedRequest::parse(dialect, body.as_bytes()).unwrap_err();
                assert_eq!(e.param.as_deref(), Some("body"), "{body}: {}", e.message);
            }
        }
        let e = EmbedRequest::parse(Dialect::OpenAi, b" [1]").unwrap_err();
        assert_eq!(e.message, "the body must be a JSON object");
        let e = EmbedRequest::parse(Dialect::OpenAi, b"{\"input\": \"a").unwrap_err();
        assert!(e.message.starts_with("malformed JSON: "), "{}", e.message);
    }

    #[test]
    fn null_is_absent_and_the_defaults_are_each_dialects() {
        let r = parse(
            Dialect::OpenAi,
            &json!({"input": "a", "model": null, "encoding_format": null,
                    "dimensions": null, "user": null, "other": {"any": [1]}}),
        )
        .unwrap();
        assert_eq!(
            r,
            EmbedRequest {
                dialect: Dialect::OpenAi,
                model: None,
                inputs: Inputs::Texts(vec!["a".into()]),
                over_limit: OverLimit::Refuse,
                dimensions: None,
                prompt: corral_embed::Prompt::ModelDefault,
                normalize: true,
                encoding: Encoding::Float,
            }
        );
        let r = parse(
            Dialect::Tei,
            &json!({"inputs": "a", "model": null, "normalize": null, "truncate": null,
                    "truncation_direction": null}),
        )
        .unwrap();
        assert_eq!((r.normalize, r.over_limit), (true, OverLimit::Refuse));
    }

    #[test]
    fn each_field_reaches_the_request() {
        let r = parse(
            Dialect::OpenAi,
            &json!({"input": ["a"], "model": "m", "encoding_format": "base64",
                    "dimensions": 3, "user": "u"}),
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.encoding, Encoding::Base64);
        assert_eq!(r.dimensions, Some(3));
        for (direction, side) in [
            ("Left", TruncationSide::Left),
            ("left", TruncationSide::Left),
            ("RIGHT", TruncationSide::Right),
        ] {
            let r = parse(
                Dialect::Tei,
                &json!({"inputs": "a", "normalize": false, "truncate": true,
                        "truncation_direction": direction}),
            )
            .unwrap();
            assert!(!r.normalize);
            assert_eq!(r.over_limit, OverLimit::Truncate(side), "{direction}");
        }
        let r = parse(
            Dialect::Tei,
            &json!({"inputs": "a", "truncate": false,
                                            "truncation_direction": "Left"}),
        )
        .unwrap();
        assert_eq!(r.over_limit, OverLimit::Refuse);
    }

    /// The typed answer writes the bytes the `json!` answer did: the same
    /// keys in the same order, and each `f32` as the `f64` it is.
    #[test]
    fn openai_answer_bytes_are_unchanged() {
        let v = vec![0.1_f32, -1.5, 3.3e-5];
        let typed = serde_json::to_string(&OpenAiResponse::new(
            "m".into(),
            vec![v.clone(), vec![]],
            7,
            Encoding::Float,
        ))
        .unwrap();
        let old = json!({
            "object": "list",
            "data": [
                { "object": "embedding", "index": 0, "embedding": json!(v) },
                { "object": "embedding", "index": 1, "embedding": json!([]) },
            ],
            "model": "m",
            "usage": { "prompt_tokens": 7, "total_tokens": 7 },
        });
        assert_eq!(typed, old.to_string());
    }
}
