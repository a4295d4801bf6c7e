//! The one trait a capability implements.
//!
//! A [`Backend`] knows how to load a model, how much an input costs (tokens
//! for text), how its forward pass costs a batch ([`Batching`]: packed or
//! padded, and its own limits) and how to run one batch. The pool forms
//! batches by that rule, so the batch it hands [`Backend::run`] is the
//! forward pass: a backend never re-slices. It knows nothing about actors, queues
//! or time: the pool calls it from a dedicated OS thread per worker, never
//! from a tokio worker thread, so every method may block for as long as the
//! model needs. A call that never returns is the supervisor's problem, not the
//! backend's (see the `supervisor` module).

use std::fmt;
use std::sync::Arc;

/// A capability the pool can run: a model, loaded once per worker.
///
/// Every method runs on the worker's own compute thread. `load` is called
/// once per worker incarnation (a replaced worker loads afresh),
/// `batching` once after it, `cost` once per input as requests are batched,
/// `run` once per batch.
pub trait Backend: Send + 'static {
    /// What [`Backend::load`] needs: a model directory, a script of faults…
    /// Shared by all workers of a pool.
    type Spec: Send + Sync + 'static;
    /// One unit of work (for text embedding: one text).
    type Input: Send + Sync + 'static;
    /// The answer for one input (for text embedding: one vector).
    type Output: Send + 'static;

    /// Loads the model. Called on the worker's compute thread; may take
    /// seconds.
    ///
    /// # Errors
    /// A [`BackendError`] when the model cannot be loaded; the supervisor
    /// retries under its restart-intensity limits.
    fn load(spec: &Self::Spec, ctx: &LoadContext) -> Result<Self, BackendError>
    where
        Self: Sized;

    /// The cost of one input in the unit `max_batch_tokens` is counted in
    /// (tokens for text). Used to fill batches up to a budget and to size the
    /// stuck-batch deadline. Must be cheap and should not fail; at least 1.
    /// (A panic here is caught: the request then costs a whole batch and
    /// runs alone.)
    fn cost(&self, input: &Self::Input) -> usize;

    /// How a batch of this backend's inputs is costed, and the most one
    /// forward pass takes (see [`Batching`]). Asked once, after
    /// [`Backend::load`]. The default, [`Batching::PACKED`], is the sum of
    /// the inputs' costs with no limits of the backend's own: the pool's
    /// `max_batch_tokens` and `max_batch_requests` alone shape a batch.
    fn batching(&self) -> Batching {
        Batching::PACKED
    }

    /// Runs one batch and returns exactly one output per input, in order.
    ///
    /// The batch keeps [`Backend::batching`]'s limits: its cost by that
    /// rule is at most [`Batching::max_cost`] and it has at most
    /// [`Batching::max_inputs`] inputs — save a single input over the cost
    /// limit by itself, which comes alone.
    ///
    /// # Errors
    /// A [`BackendError`] fails the batch. The pool then reruns each request
    /// of a multi-request batch on its own, so that one bad input fails only
    /// its own request; so does a result with the wrong number of outputs. A
    /// panic is caught: the worker is replaced and the batch retried
    /// elsewhere, each request alone.
    fn run(&mut self, batch: &[&Self::Input]) -> Result<Vec<Self::Output>, BackendError>;
}

/// How a backend's forward pass costs a batch, as TEI's `is_padded` tells
/// its queue: the pool fills a batch by this rule, within the backend's own
/// limits as well as the pool's, so the batch [`Backend::run`] gets is the
/// forward pass.
///
/// The pool's `max_batch_tokens` bounds a batch of several requests (a
/// request over it by itself runs alone, as before); `max_cost` and
/// `max_inputs` bound every forward pass: a request over them by itself is
/// run as several forwards, its inputs in order, each within the limits
/// (a single input over `max_cost` alone is one forward), and answered
/// once, its outputs concatenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Whether the forward pads every input to the batch's costliest one
    /// (candle's BERT: a batch costs inputs × the longest) rather than
    /// packing them (the sum of the inputs' costs).
    pub padded: bool,
    /// The most a forward pass may cost, by the rule above, in
    /// [`Backend::cost`]'s unit; `usize::MAX` for no limit of the backend's
    /// own.
    pub max_cost: usize,
    /// The most inputs in one forward pass; `usize::MAX` for no limit.
    pub max_inputs: usize,
}

impl Batching {
    /// The sum of the inputs' costs, no limits of the backend's own.
    pub const PACKED: Self = Self {
        padded: false,
        max_cost: usize::MAX,
        max_inputs: usize::MAX,
    };

    /// Inputs × the costliest input, no limits of the backend's own.
    pub const PADDED: Self = Self {
        padded: true,
        ..Self::PACKED
    };

    /// This rule with at most `max_cost` per forward pass (at least 1).
    #[must_use]
    pub fn with_max_cost(self, max_cost: usize) -> Self {
        Self {
            max_cost: max_cost.max(1),
            ..self
        }
    }

    /// This rule with at most `max_inputs` inputs per forward pass (at
    /// least 1).
    #[must_use]
    pub fn with_max_inputs(self, max_inputs: usize) -> Self {
        Self {
            max_inputs: max_inputs.max(1),
            ..self
        }
    }

    /// What a batch of this shape costs: inputs × the costliest when
    /// padded, the sum of the costs when packed.
    pub fn cost(&self, shape: BatchShape) -> usize {
        if self.padded {
            shape.inputs.saturating_mul(shape.costliest)
        } else {
            shape.sum
        }
    }

    /// Whether one forward pass may run a batch of this shape.
    pub fn fits(&self, shape: BatchShape) -> bool {
        shape.inputs <= self.max_inputs && self.cost(shape) <= self.max_cost
    }

    /// Cuts inputs of costs `costs` (in order) into forward passes within
    /// the limits: each range as long as the next input still fits, at
    /// least one input each.
    pub fn forwards(&self, costs: &[usize]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut shape) = (0, BatchShape::default());
        for (i, &c) in costs.iter().enumerate() {
            let grown = shape.with(c);
            if i > start && !self.fits(grown) {
                out.push(start..i);
                start = i;
                shape = BatchShape::default().with(c);
            } else {
                shape = grown;
            }
        }
        if start < costs.len() {
            out.push(start..costs.len());
        }
        out
    }
}

/// What costing a batch needs to know of it (see [`Batching::cost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchShape {
    /// How many inputs.
    pub inputs: usize,
    /// The sum of their costs.
    pub sum: usize,
    /// The largest of their costs.
    pub costliest: usize,
}

impl BatchShape {
    /// This shape with one more input of cost `cost`.
    #[must_use]
    pub fn with(self, cost: usize) -> Self {
        Self {
            inputs: self.inputs.saturating_add(1),
            sum: self.sum.saturating_add(cost),
            costliest: self.costliest.max(cost),
        }
    }

    /// The shape of this batch and `other` together.
    #[must_use]
    pub fn join(self, other: Self) -> Self {
        Self {
            inputs: self.inputs.saturating_add(other.inputs),
            sum: self.sum.saturating_add(other.sum),
            costliest: self.costliest.max(other.costliest),
        }
    }
}

/// What the pool tells a backend when it loads it.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// The pool's name (metrics label; two pools in one process differ here).
    pub pool: Arc<str>,
    /// Unique id of the worker incarnation that is loading.
    pub worker_id: u64,
    /// Compute threads this worker may use. The pool chooses it so that
    /// workers × threads ≤ cores unless configured otherwise.
    pub threads: usize,
}

/// A failure inside a backend: the model could not load or could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
}

/// Whether a [`BackendError`] is the caller's fault or the backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// The input cannot be processed (maps to `PoolError::InvalidInput`).
    InvalidInput,
    /// The backend failed (maps to `PoolError::Backend`).
    Failed,
}

impl BackendError {
    /// A backend failure (load or run).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: BackendErrorKind::Failed,
            message: message.into(),
        }
    }

    /// An input the backend cannot process; the caller should not retry it.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: BackendErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(costs: &[usize]) -> BatchShape {
        costs.iter().fold(BatchShape::default(), |s, &c| s.with(c))
    }

    #[test]
    fn packed_costs_the_sum_and_padded_the_rows_times_the_longest() {
        let s = shape(&[3, 9, 4]);
        assert_eq!(
            s,
            BatchShape {
                inputs: 3,
                sum: 16,
                costliest: 9
            }
        );
        assert_eq!(Batching::PACKED.cost(s), 16);
        assert_eq!(Batching::PADDED.cost(s), 27);
        assert_eq!(shape(&[3, 9]).join(shape(&[4])), s);
        assert!(Batching::PADDED.with_max_cost(27).fits(s));
        assert!(!Batching::PADDED.with_max_cost(26).fits(s));
        assert!(Batching::PACKED.with_max_cost(16).fits(s));
        assert!(!Batching::PACKED.with_max_inputs(2).fits(s));
    }

    #[test]
    fn forwards_cut_in_order_within_the_limits() {
        let costs = [4, 4, 4, 30, 2, 2, 2, 2, 2];
        let packed = Batching::PACKED.with_max_cost(10).with_max_inputs(4);
        // 4+4 (a third 4 would be 12), 4 (then 30 alone), 2×4 (a fifth
        // input is over the row cap), 2.
        assert_eq!(packed.forwards(&costs), [0..2, 2..3, 3..4, 4..8, 8..9]);
        // Padded: rows × longest ≤ 10: [4,4] (3 × 4 = 12), [4], [30], [2 × 5].
        let padded = Batching::PADDED.with_max_cost(10);
        assert_eq!(padded.forwards(&costs), [0..2, 2..3, 3..4, 4..9]);
        assert_eq!(padded.forwards(&[2, 2, 5]), [0..2, 2..3]);
        assert!(Batching::PACKED.forwards(&[]).is_empty());
        assert_eq!(Batching::PACKED.forwards(&costs), vec![0..costs.len()]);
    }
}
