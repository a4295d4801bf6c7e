//! `GET /openapi.json`: an OpenAPI 3.0 document of every route, built from
//! the same table the router is built from (see `app`), each request body
//! from its body type — the fields serde reads and what each must be, the
//! sentence its errors give (`types::BodySchema`) — so that it cannot drift
//! from what the server serves and reads.

use serde_json::{json, Map, Value};

use crate::types::BodySchema;

/// What the document says of one route.
#[derive(Clone, Copy)]
pub(crate) struct RouteDoc {
    /// `get` or `post`.
    pub(crate) method: &'static str,
    /// One line on what it does, and in whose dialect.
    pub(crate) summary: &'static str,
    /// The body shapes it takes (none for a `GET`; several where the route
    /// tells them apart, as `/rerank` and `POST /` do).
    pub(crate) bodies: &'static [fn() -> BodySchema],
}

impl RouteDoc {
    /// A `GET`.
    pub(crate) const fn get(summary: &'static str) -> Self {
        Self {
            method: "get",
            summary,
            bodies: &[],
        }
    }

    /// A `POST` taking one of `bodies`.
    pub(crate) const fn post(summary: &'static str, bodies: &'static [fn() -> BodySchema]) -> Self {
        Self {
            method: "post",
            summary,
            bodies,
        }
    }
}

/// The JSON Schema of one field, from what its errors say it must be.
fn property(must_be: Option<&'static str>) -> Value {
    let Some(must_be) = must_be else {
        return json!({});
    };
    let mut p = match must_be {
        "a boolean" => json!({ "type": "boolean" }),
        "a string" => json!({ "type": "string" }),
        "a positive integer" => json!({ "type": "integer", "minimum": 1 }),
        _ => json!({}),
    };
    p["description"] = Value::String(format!("{must_be}."));
    p
}

/// The JSON Schema of one body.
fn body(schema: BodySchema) -> Value {
    let properties: Map<String, Value> = schema
        .fields
        .iter()
        .map(|&f| (f.to_owned(), property((schema.expectation)(f))))
        .collect();
    json!({ "type": "object", "properties": properties })
}

/// The document for `routes` (path and what to say of it), at `version`.
pub(crate) fn document(routes: &[(&'static str, RouteDoc)], version: &str) -> Value {
    let mut paths = Map::new();
    for (path, doc) in routes {
        let mut op = json!({
            "summary": doc.summary,
            "responses": {
                "200": { "description": "the answer, in the route's dialect" },
                "default": { "description": "an error, in the route's dialect's error body" },
            },
        });
        let bodies: Vec<Value> = doc.bodies.iter().map(|b| body(b())).collect();
        if !bodies.is_empty() {
            let schema = match <[Value; 1]>::try_from(bodies) {
                Ok([one]) => one,
                Err(several) => json!({ "oneOf": several }),
            };
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schema } },
            });
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[doc.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "corral serve", "version": version },
        "paths": paths,
    })
}
