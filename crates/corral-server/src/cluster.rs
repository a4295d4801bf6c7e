//! [`ClusterModel`]: [`ServedModel`] over a `corral_cluster::ClusterHandle`
//! — a model served by the pools of its group across the cluster
//! (`corral/<kind>/<name>`, as `corral node` puts them there) instead of a
//! pool in this process. The model directory is read here only for what the
//! front does itself: its tokenizer (requests cross the wire as token ids)
//! and its card (kind, dimensions, length, pooling, labels, activation).
//!
//! Admission is [`Call::try_call_batch`], as for a local pool: the handle
//! picks the member with the least expected wait; when every member is
//! full the request is refused `Overloaded` with the soonest member's
//! estimate (429 + `Retry-After`); a member lost with the request in
//! flight is retried once on another, then `WorkerLost` (503). With no
//! member in routing, [`ServedModel::unavailable`] says so and the routes
//! answer 503 with that reason, and `/health` is 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_cluster::{group_name, ClusterConfig, ClusterHandle, MemberInfo};
use corral_core::{Call, Health, HealthReport, PoolError, WorkerHealth, WorkerState};
use corral_embed::{
    Activation, EmbedError, EmbedInput, EmbedOutput, EmbedSpec, EmbedTokenizer, ModelKind,
    PairTokenized, ScoreInput, ScoreOutput, Tokenized, TruncationSide,
};

use crate::model::{BoxFuture, Embedded, ModelCard, Scored, ServedModel, TokenizeError};
use crate::pool::{decode, timings, tokenize, wrap_ids};

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
    /// routing. `spec`'s directory gives the tokenizer and the card; no
    /// model is loaded. This process must run a `corral_cluster::Node`
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
        Self::spawn_in(name, spec, ClusterConfig::new(group)).await
    }

    /// As [`Self::spawn`], with the group and routing of `config`.
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
        })
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

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            let Handle::Embed(h) = &self.handle else {
                return Err(self.wrong_task("embed"));
            };
            let inputs = inputs.into_iter().map(EmbedInput::Tokens).collect();
            let submitted = Instant::now();
            let outputs = h.try_call_batch(inputs).await?;
            let (queue_time, compute_time) = timings(
                submitted,
                outputs.last().map(|o| (o.batch_started, o.batch_time)),
            );
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
            let submitted = Instant::now();
            let outputs = h.try_call_batch(inputs).await?;
            let (queue_time, compute_time) = timings(
                submitted,
                outputs.last().map(|o| (o.batch_started, o.batch_time)),
            );
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
        Some(format!(
            "model `{}`: no member of the cluster group {} is in routing ({} known, none answering): \
             no `corral node` serving it is connected",
            self.card.name,
            self.group,
            members.len()
        ))
    }

    /// Nothing to drain here: the members' pools are their nodes'. The
    /// server's drain waits for the requests this front has out.
    fn shutdown(&self, _deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::info!(model = %self.card.name, group = %self.group, "cluster model stopped");
        })
    }
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
