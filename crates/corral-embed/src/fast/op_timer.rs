//! Per-op timing of FastBert through `tracing` spans, and [`OpTimer`], the
//! `tracing_subscriber` layer that sums them.
//!
//! Every op of a forward pass runs inside a TRACE-level span with target
//! [`OP_TARGET`], named for the op (see [`OPS`]), and each whole forward
//! call ([`FastBert::forward_packed`](super::FastBert::forward_packed))
//! inside one named [`FORWARD`]. With no subscriber, or one that does not enable
//! TRACE for [`OP_TARGET`], a span costs the check of its callsite's cached
//! interest: no clock is read and nothing is recorded.
//!
//! To see the profile, install an [`OpTimer`] over a
//! [`tracing_subscriber::Registry`] (globally, or for a scope with
//! `tracing::subscriber::with_default`) and read [`OpTimer::times`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::span;
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of FastBert's op and forward spans.
pub const OP_TARGET: &str = "corral_embed::fast::op";

/// The name of the span around one whole forward call.
pub const FORWARD: &str = "forward";

/// The names of the op spans, in forward order, with what each covers:
/// `embeddings` (gathering real tokens, embedding sum and its layer norm),
/// `qkv_matmul` (QKV matmul including the bias pre-fill), `attention`
/// (scores, softmax and context for all heads), `attn_out_matmul`
/// (attention output matmul, residual fused into gemm), `layer_norm`
/// (a fused bias + layer norm; twice per encoder layer), `ffn_in_matmul`
/// (feed-forward up matmul), `bias_gelu` (fused bias + GELU),
/// and `ffn_out_matmul` (feed-forward down matmul + residual). Pooling is
/// not FastBert's (see `crate::pooling`).
pub const OPS: [&str; 8] = [
    "embeddings",
    "qkv_matmul",
    "attention",
    "attn_out_matmul",
    "layer_norm",
    "ffn_in_matmul",
    "bias_gelu",
    "ffn_out_matmul",
];

/// The span of one op, named `$name` (one of [`OPS`]), at TRACE level.
macro_rules! op_span {
    ($name:literal) => {
        tracing::trace_span!(target: $crate::fast::op_timer::OP_TARGET, $name)
    };
}
pub(crate) use op_span;

/// The time summed for one op by an [`OpTimer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpTime {
    /// The op's span name (one of [`OPS`]).
    pub name: &'static str,
    /// Summed busy time (see [`OpTimer`] for what is measured).
    pub time: Duration,
    /// How many times a span of this op was exited.
    pub count: u64,
}

/// A snapshot of what an [`OpTimer`] has summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpTimes {
    /// One entry per op seen, in the order each was first completed, which
    /// for FastBert is forward order (see [`OPS`]).
    pub ops: Vec<OpTime>,
    /// Forward calls completed (spans named [`FORWARD`] exited).
    pub calls: u64,
    /// Summed wall time of those forward calls.
    pub forward_time: Duration,
}

impl OpTimes {
    /// `(name, time)` pairs in forward order.
    pub fn entries(&self) -> Vec<(&'static str, Duration)> {
        self.ops.iter().map(|o| (o.name, o.time)).collect()
    }

    /// The entry of the op `name`, if it was seen.
    pub fn get(&self, name: &str) -> Option<&OpTime> {
        self.ops.iter().find(|o| o.name == name)
    }

    /// Sum of all ops' times.
    pub fn total(&self) -> Duration {
        self.ops.iter().map(|o| o.time).sum()
    }
}

/// A [`Layer`] that sums, per FastBert op, the wall time between entering
/// and exiting its span, on the thread that entered it (the thread that
/// called the forward; with `threads > 1` the op's work is shared out over
/// the rayon pool, and its time is still the caller's wall time, not CPU
/// time summed over threads). Spans of other targets are ignored.
///
/// Cloning gives a handle on the same sums, so keep a clone to read
/// [`OpTimer::times`] after moving one into a subscriber. It is
/// thread-safe: forwards running at once on several threads (several
/// workers) all add to the same sums, which can then exceed wall time.
/// Each exit of an op span takes a mutex briefly. The spans are opened on
/// the thread that calls the forward, so a subscriber installed with
/// `tracing::subscriber::with_default` (which covers the current thread
/// only) must be installed on that thread, e.g. inside the worker's
/// `pool.install`; a global default covers every thread. One caveat of
/// `tracing` itself: while a scoped subscriber is the only dispatcher in
/// the process, a span first reached on *another* thread that has no
/// subscriber is cached as uninteresting everywhere, and its later spans
/// are lost to this timer too. Install the timer globally, or keep a
/// second dispatcher alive, when other threads run forwards at the same
/// time (the crate's own test does the latter).
///
/// ```
/// use corral_embed::fast::OpTimer;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let timer = OpTimer::default();
/// let subscriber = tracing_subscriber::registry().with(timer.clone());
/// tracing::subscriber::with_default(subscriber, || {
///     // FastBert forward calls here are profiled.
/// });
/// for (op, time) in timer.times().entries() {
///     println!("{op}: {time:?}");
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct OpTimer {
    sums: Arc<Mutex<OpTimes>>,
}

/// When the span was entered, kept in its extensions.
struct Entered(Instant);

impl OpTimer {
    /// A timer with nothing summed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been summed so far.
    pub fn times(&self) -> OpTimes {
        self.sums
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything summed so far.
    pub fn reset(&self) {
        *self.sums.lock().unwrap_or_else(PoisonError::into_inner) = OpTimes::default();
    }
}

impl<S> Layer<S> for OpTimer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.metadata().target() != OP_TARGET {
            return;
        }
        span.extensions_mut().replace(Entered(Instant::now()));
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let meta = span.metadata();
        if meta.target() != OP_TARGET {
            return;
        }
        let Some(Entered(start)) = span.extensions_mut().remove::<Entered>() else {
            return;
        };
        let time = start.elapsed();
        let name = meta.name();
        let mut sums = self.sums.lock().unwrap_or_else(PoisonError::into_inner);
        if name == FORWARD {
            sums.calls += 1;
            sums.forward_time += time;
            return;
        }
        match sums.ops.iter_mut().find(|o| o.name == name) {
            Some(o) => {
                o.time += time;
                o.count += 1;
            }
            None => sums.ops.push(OpTime {
                name,
                time,
                count: 1,
            }),
        }
    }
}
