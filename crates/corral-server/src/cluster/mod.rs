//! [`ClusterModel`]: [`ServedModel`] over a `corral_cluster::ClusterHandle`
//! — a model served by the pools of its group across the cluster
//! (`corral/<kind>/<name>`, as `corral node` puts them there) instead of a
//! pool in this process. The model directory is read here only for what the
//! front does itself: its tokenizer (requests cross the wire as token ids)
//! and its card (kind, dimensions, length, pooling, labels, activation).
//!
//! Admission is [`corral_core::Call::try_call_batch`], as for a local pool: the handle
//! picks the member with the least expected wait; when every member is
//! full the request is refused `Overloaded` with the soonest member's
//! estimate (429 + `Retry-After`); a member lost with the request in
//! flight is retried once on another, then `WorkerLost` (503). With no
//! member in routing, [`ServedModel::unavailable`] says so and the routes
//! answer 503 with that reason, and `/health` is 503.
//!
//! The front tokenises, truncates and normalises itself, so a member must
//! run what the front's card says: [`promise_of`] is what a member
//! promises (`corral node` sends it) and what the front expects of it —
//! the same function on both sides, the front's with normalisation off
//! (it normalises). A member whose promise differs (normalisation on,
//! another model or tokenizer under the same name, other dimensions,
//! length or pooling) is kept out of routing with the reason, logged, on
//! `/metrics` (`corral_member_refused`) and in `/health`'s reason when no
//! member is left. [`ServedModel::record_metrics`] sets each member's
//! series on `/metrics` (see `crate::telemetry`'s `MEMBER_*`).
//!
//! [`serve_node_status`] is `corral node --http-port`: `/health` and
//! `/metrics` of a node's own pool.

mod node_status;
mod promise;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_cluster::{
    group_name, ClusterConfig, ClusterHandle, MemberCounts, MemberInfo, NO_PROMISE,
};
use corral_core::{Health, HealthReport, PoolError, WorkerHealth, WorkerState};
use corral_embed::{
    Activation, EmbedError, EmbedInput, EmbedOutput, EmbedSpec, EmbedTokenizer, ModelKind,
    PairTokenized, ScoreInput, ScoreOutput, Tokenized, TruncationSide,
};

pub use node_status::serve_node_status;
pub use promise::{fingerprint, promise_of};

use crate::model::{BoxFuture, Embedded, ModelCard, Scored, ServedModel, TokenSpan, TokenizeError};
use crate::pool::{decode, timed_batch, tokenize, tokens, wrap_ids};
use crate::telemetry::{
    MEMBER_DEPTH, MEMBER_IN_FLIGHT, MEMBER_IN_ROUTING, MEMBER_REFUSED, MEMBER_REQUESTS,
    MEMBER_SECONDS_PER_REQUEST, MEMBER_SHARE,
};

/// Why [`ClusterModel::spawn`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterModelError {
    /// The model directory, its configuration or its tokenizer is not
    /// usable.
    #[error(transparent)]
    Model(#[from] EmbedError),
    /// The group's router could not be started.
    #[error("starting the router of {group}: {message}")]
    Router {
        /// The group.
        group: String,
        /// What ractor said.
        message: String,
    },
}

/// The handle of the model's group, typed by its task.
#[derive(Clone)]
enum Handle {
    Embed(ClusterHandle<EmbedInput, EmbedOutput>),
    Score(ClusterHandle<ScoreInput, ScoreOutput>),
}

/// A served model whose pools are the members of its group across the
/// cluster; see the module docs.
#[derive(Clone)]
pub struct ClusterModel {
    card: ModelCard,
    group: String,
    tokenizer: Arc<EmbedTokenizer>,
    handle: Handle,
    /// Member labels ever put on `/metrics`, so that one gone is shown out.
    shown: Arc<Mutex<BTreeSet<String>>>,
    /// Refusals put on `/metrics` (member, reason), so that one lifted (a
    /// member that answered its describe at last) is shown 0.
    shown_refusals: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl std::fmt::Debug for ClusterModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterModel")
            .field("card", &self.card)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClusterModel {
    /// Serves `name` through the group `corral/<kind>/<name>`, the kind
    /// read from `spec`'s `config.json`, with [`ClusterConfig::new`]'s
    /// routing, routing only to members that promise what
    /// [`promise_of`] says of `name` and `spec` with normalisation off
    /// (the node's name aside). `spec`'s directory gives the tokenizer and
    /// the card; no model is loaded (the weights are read once, for their
    /// fingerprint). This process must run a `corral_cluster::Node`
    /// connected to the members' nodes (members found later join routing
    /// as they come). The card's `workers` and queue bounds are 0: the
    /// members' pools have their own.
    ///
    /// # Errors
    /// A bad model directory or tokenizer; the router not starting.
    pub async fn spawn(
        name: impl Into<String>,
        spec: &EmbedSpec,
    ) -> Result<Self, ClusterModelError> {
        let name = name.into();
        let kind = spec.model_kind()?;
        let group = group_name(kind.as_str(), &name);
        let expect = promise_of(&name, &spec.clone().with_normalize(false))?;
        let config = ClusterConfig {
            expect: Some(expect),
            ..ClusterConfig::new(group)
        };
        Self::spawn_in(name, spec, config).await
    }

    /// As [`Self::spawn`], with the group, routing and expectation of
    /// `config` (its `expect` as given: `None` routes to any member).
    ///
    /// # Errors
    /// As [`Self::spawn`].
    pub async fn spawn_in(
        name: impl Into<String>,
        spec: &EmbedSpec,
        config: ClusterConfig,
    ) -> Result<Self, ClusterModelError> {
        let name = name.into();
        let kind = spec.model_kind()?;
        let card = match kind {
            ModelKind::Embed => {
                let info = spec.model_info()?;
                ModelCard {
                    name,
                    kind,
                    dimensions: info.dim,
                    max_input_tokens: info.max_seq_length,
                    pooling: info.pooling.to_string(),
                    workers: 0,
                    queue_capacity: 0,
                    batch_queue_capacity: 0,
                    labels: Vec::new(),
                    activation: Activation::Identity,
                }
            }
            _ => {
                let info = spec.score_info()?;
                ModelCard {
                    name,
                    kind: info.kind,
                    dimensions: 0,
                    max_input_tokens: info.max_seq_length,
                    pooling: "cls".into(),
                    workers: 0,
                    queue_capacity: 0,
                    batch_queue_capacity: 0,
                    labels: info.labels,
                    activation: info.activation,
                }
            }
        };
        let tokenizer = EmbedTokenizer::load(spec)?;
        let group = config.group.clone();
        let router = |message: String| ClusterModelError::Router {
            group: group.clone(),
            message,
        };
        let handle = match kind {
            ModelKind::Embed => Handle::Embed(
                ClusterHandle::spawn(config)
                    .await
                    .map_err(|e| router(e.to_string()))?,
            ),
            _ => Handle::Score(
                ClusterHandle::spawn(config)
                    .await
                    .map_err(|e| router(e.to_string()))?,
            ),
        };
        Ok(Self {
            card,
            group,
            tokenizer: Arc::new(tokenizer),
            handle,
            shown: Arc::default(),
            shown_refusals: Arc::default(),
        })
    }

    /// The counts of members that left, by node (see
    /// [`ClusterHandle::departed`]).
    pub fn departed(&self) -> BTreeMap<String, MemberCounts> {
        match &self.handle {
            Handle::Embed(h) => h.departed(),
            Handle::Score(h) => h.departed(),
        }
    }

    /// The process group it routes over.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Every member the router knows, in routing or not.
    pub fn members(&self) -> Vec<MemberInfo> {
        match &self.handle {
            Handle::Embed(h) => h.members(),
            Handle::Score(h) => h.members(),
        }
    }

    /// Waits until `n` members are in routing.
    ///
    /// # Errors
    /// `TimedOut` when they are not within `timeout`.
    pub async fn wait_members(&self, n: usize, timeout: Duration) -> Result<(), PoolError> {
        match &self.handle {
            Handle::Embed(h) => h.wait_members(n, timeout).await,
            Handle::Score(h) => h.wait_members(n, timeout).await,
        }
    }

    fn wrong_task(&self, task: &str) -> PoolError {
        PoolError::InvalidInput(format!(
            "model `{}` is a {} model: it does not {task}",
            self.card.name, self.card.kind
        ))
    }
}

impl ServedModel for ClusterModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        tokenize(&self.tokenizer, text, side)
    }

    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        wrap_ids(&self.tokenizer, ids, side)
    }

    fn tokenize_pair(
        &self,
        first: &str,
        second: Option<&str>,
    ) -> Result<PairTokenized, TokenizeError> {
        if self.card.kind == ModelKind::Embed {
            // As an embedder's default: one text, cut from the right.
            if second.is_some() {
                return Err(TokenizeError::Unsupported(
                    "tokenise a pair of texts".into(),
                ));
            }
            let Tokenized { ids, truncated } = self.tokenize(first, TruncationSide::Right)?;
            return Ok(PairTokenized {
                type_ids: vec![0; ids.len()],
                ids,
                truncated,
            });
        }
        self.tokenizer
            .encode_pair(first, second)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        decode(&self.tokenizer, ids, skip_special_tokens)
    }

    fn tokens(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Vec<TokenSpan>, TokenizeError> {
        tokens(&self.tokenizer, text, add_special_tokens)
    }

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            let Handle::Embed(h) = &self.handle else {
                return Err(self.wrong_task("embed"));
            };
            let inputs = inputs.into_iter().map(EmbedInput::Tokens).collect();
            let (outputs, queue_time, compute_time) =
                timed_batch(h, inputs, |o| (o.batch_started, o.batch_time)).await?;
            Ok(Embedded {
                vectors: outputs.into_iter().map(|o| o.vector).collect(),
                queue_time,
                compute_time,
            })
        })
    }

    fn score(&self, inputs: Vec<PairTokenized>) -> BoxFuture<'_, Result<Scored, PoolError>> {
        Box::pin(async move {
            let Handle::Score(h) = &self.handle else {
                return Err(self.wrong_task("score texts"));
            };
            let inputs = inputs.into_iter().map(ScoreInput::Tokens).collect();
            let (outputs, queue_time, compute_time) =
                timed_batch(h, inputs, |o| (o.batch_started, o.batch_time)).await?;
            Ok(Scored {
                logits: outputs.into_iter().map(|o| o.logits).collect(),
                queue_time,
                compute_time,
            })
        })
    }

    /// One "worker" per member the router knows: `Ready` while in
    /// routing, `Restarting` while out of it (silent past the liveness
    /// bound); its depth is the member's last reported load.
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(async move { Ok(health_of(&self.members())) })
    }

    fn unavailable(&self) -> Option<String> {
        let members = self.members();
        if members.iter().any(|m| m.in_routing) {
            return None;
        }
        let refused: Vec<String> = members
            .iter()
            .filter_map(|m| {
                m.refused
                    .as_ref()
                    .map(|r| format!("member {} refused: {r}", m.label()))
            })
            .collect();
        let unpromised = members
            .iter()
            .filter(|m| {
                m.refused
                    .as_deref()
                    .is_some_and(|r| r.starts_with(NO_PROMISE))
            })
            .count();
        let mut reason = format!(
            "model `{}`: no member of the cluster group {} is in routing ({} known, {} refused for their settings, \
             {unpromised} without a promise, none answering): \
             no `corral node` serving it with this model's settings is connected",
            self.card.name,
            self.group,
            members.len(),
            refused.len() - unpromised
        );
        if !refused.is_empty() {
            reason.push_str(" (");
            reason.push_str(&refused.join("; "));
            reason.push(')');
        }
        Some(reason)
    }

    fn record_metrics(&self) {
        let rows = member_rows(&self.members(), &self.departed());
        let model = self.card.name.clone();
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        // Members shown before and known no more: out, with nothing out.
        for gone in shown.iter().filter(|l| !rows.contains_key(*l)) {
            let labels = [("model", model.clone()), ("member", gone.clone())];
            metrics::gauge!(MEMBER_IN_ROUTING, &labels).set(0.0);
            metrics::gauge!(MEMBER_DEPTH, &labels).set(0.0);
            metrics::gauge!(MEMBER_IN_FLIGHT, &labels).set(0.0);
        }
        let answered: u64 = rows.values().map(|r| r.counts.answered).sum();
        for (member, row) in &rows {
            shown.insert(member.clone());
            let labels = [("model", model.clone()), ("member", member.clone())];
            metrics::gauge!(MEMBER_IN_ROUTING, &labels).set(f64::from(u8::from(row.in_routing)));
            metrics::gauge!(MEMBER_DEPTH, &labels).set(f64::from(row.depth));
            metrics::gauge!(MEMBER_IN_FLIGHT, &labels).set(f64::from(row.in_flight));
            metrics::gauge!(MEMBER_SECONDS_PER_REQUEST, &labels).set(row.per_request.as_secs_f64());
            #[allow(clippy::cast_precision_loss)]
            let share = if answered == 0 {
                0.0
            } else {
                row.counts.answered as f64 / answered as f64
            };
            metrics::gauge!(MEMBER_SHARE, &labels).set(share);
            let c = row.counts;
            for (outcome, n) in [
                ("sent", c.sent),
                ("answered", c.answered),
                ("refused", c.refused),
                ("lost", c.lost),
            ] {
                metrics::counter!(MEMBER_REQUESTS, "model" => model.clone(), "member" => member.clone(), "outcome" => outcome)
                    .absolute(n);
            }
        }
        let mut shown_refusals = self
            .shown_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((member, reason), on) in refusal_series(&rows, &mut shown_refusals) {
            metrics::gauge!(MEMBER_REFUSED, "model" => model.clone(), "member" => member, "reason" => reason)
                .set(on);
        }
    }

    /// Nothing to drain here: the members' pools are their nodes'. The
    /// server's drain waits for the requests this front has out.
    fn shutdown(&self, _deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::info!(model = %self.card.name, group = %self.group, "cluster model stopped");
        })
    }
}

/// One member, by label, as `/metrics` shows it: members under one label
/// (a node's member that restarted, the old one not yet gone) added up,
/// with the counts of those that left.
#[derive(Debug, Default, PartialEq)]
struct Row {
    in_routing: bool,
    depth: u32,
    in_flight: u32,
    per_request: Duration,
    counts: MemberCounts,
    refused: Option<String>,
}

/// The refusal series to set: 1 for each member refused now, with its
/// reason; 0 for each shown before and no longer current (lifted: a
/// member without a promise that answered its describe, or one that left).
/// `shown` becomes the current ones.
fn refusal_series(
    rows: &BTreeMap<String, Row>,
    shown: &mut BTreeSet<(String, String)>,
) -> Vec<((String, String), f64)> {
    let now: BTreeSet<(String, String)> = rows
        .iter()
        .filter_map(|(m, r)| r.refused.clone().map(|reason| (m.clone(), reason)))
        .collect();
    let mut series: Vec<_> = shown.difference(&now).map(|k| (k.clone(), 0.0)).collect();
    series.extend(now.iter().map(|k| (k.clone(), 1.0)));
    *shown = now;
    series
}

fn add(a: &mut MemberCounts, b: MemberCounts) {
    a.sent += b.sent;
    a.answered += b.answered;
    a.refused += b.refused;
    a.lost += b.lost;
}

fn member_rows(
    members: &[MemberInfo],
    departed: &BTreeMap<String, MemberCounts>,
) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (label, counts) in departed {
        add(&mut rows.entry(label.clone()).or_default().counts, *counts);
    }
    for m in members {
        let row = rows.entry(m.label()).or_default();
        row.in_routing |= m.in_routing;
        if let Some(load) = m.load {
            row.depth = row.depth.saturating_add(load.in_flight);
            row.per_request = row.per_request.max(load.per_request);
        }
        row.in_flight = row.in_flight.saturating_add(m.outstanding);
        add(&mut row.counts, m.counts);
        if m.refused.is_some() {
            row.refused.clone_from(&m.refused);
        }
    }
    rows
}

/// A [`HealthReport`] of a group's members, one worker slot per member.
fn health_of(members: &[MemberInfo]) -> HealthReport {
    let workers: Vec<WorkerHealth> = members
        .iter()
        .enumerate()
        .map(|(slot, m)| WorkerHealth {
            slot,
            worker_id: None,
            state: if m.in_routing {
                WorkerState::Ready
            } else {
                WorkerState::Restarting
            },
            queue_depth: m.load.map_or(0, |l| l.in_flight as usize),
            running: 0,
            last_pong_age: None,
        })
        .collect();
    let ready = members.iter().filter(|m| m.in_routing).count();
    HealthReport {
        health: match ready {
            0 => Health::Unhealthy,
            r if r == members.len() => Health::Healthy,
            _ => Health::Degraded,
        },
        workers,
        waiting: 0,
        draining: false,
        retry_after: members
            .iter()
            .filter(|m| m.in_routing)
            .filter_map(|m| m.load.map(|l| l.retry_after))
            .min()
            .unwrap_or(Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(refused: &[(&str, Option<&str>)]) -> BTreeMap<String, Row> {
        refused
            .iter()
            .map(|(m, r)| {
                let row = Row {
                    refused: r.map(str::to_owned),
                    ..Row::default()
                };
                ((*m).to_owned(), row)
            })
            .collect()
    }

    fn key(m: &str, r: &str) -> (String, String) {
        (m.to_owned(), r.to_owned())
    }

    #[test]
    fn a_lifted_refusal_is_shown_zero_once() {
        let mut shown = BTreeSet::new();
        let no_promise = "no promise: no answer to describe within 3s";
        let first = refusal_series(
            &rows(&[
                ("old", Some(no_promise)),
                ("ok", None),
                ("n", Some("normalize")),
            ]),
            &mut shown,
        );
        assert_eq!(
            first,
            [(key("n", "normalize"), 1.0), (key("old", no_promise), 1.0)]
        );
        // "old" answered at last; "n" is still refused.
        let second = refusal_series(
            &rows(&[("old", None), ("ok", None), ("n", Some("normalize"))]),
            &mut shown,
        );
        assert_eq!(
            second,
            [(key("old", no_promise), 0.0), (key("n", "normalize"), 1.0)]
        );
        let third = refusal_series(&rows(&[("old", None), ("ok", None)]), &mut shown);
        assert_eq!(third, [(key("n", "normalize"), 0.0)]);
        assert!(shown.is_empty());
    }
}
