//! [`EmbedExt`]: the pool's generic `call*` family under the names an
//! embedding caller reads naturally — `embed`, `embed_timeout`,
//! `try_embed`, and their `_batch` forms — for any handle to an
//! [`EmbedBackend`] pool. Each is exactly its `call*` counterpart.

use std::future::Future;
use std::time::Duration;

use corral_core::{Backend, CallError, PoolError, PoolHandle};

use crate::EmbedBackend;

type Input = <EmbedBackend as Backend>::Input;
type Vector = <EmbedBackend as Backend>::Output;

/// Embedding names for a [`PoolHandle<EmbedBackend>`]; bring it into scope
/// with `use corral_embed::EmbedExt`.
pub trait EmbedExt {
    /// [`PoolHandle::call`]: one text, waiting for room up to the pool's
    /// `admission_timeout`.
    fn embed(&self, text: Input) -> impl Future<Output = Result<Vector, PoolError>> + Send;

    /// [`PoolHandle::call_timeout`]: one text, waiting for room up to `wait`.
    fn embed_timeout(
        &self,
        text: Input,
        wait: Duration,
    ) -> impl Future<Output = Result<Vector, PoolError>> + Send;

    /// [`PoolHandle::try_call`]: one text, refused at once (the text handed
    /// back) when every mailbox is full.
    fn try_embed(
        &self,
        text: Input,
    ) -> impl Future<Output = Result<Vector, CallError<Input>>> + Send;

    /// [`PoolHandle::call_batch`]: several texts as one request.
    fn embed_batch(
        &self,
        texts: Vec<Input>,
    ) -> impl Future<Output = Result<Vec<Vector>, PoolError>> + Send;

    /// [`PoolHandle::call_batch_timeout`].
    fn embed_batch_timeout(
        &self,
        texts: Vec<Input>,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Vector>, PoolError>> + Send;

    /// [`PoolHandle::try_call_batch`].
    fn try_embed_batch(
        &self,
        texts: Vec<Input>,
    ) -> impl Future<Output = Result<Vec<Vector>, CallError<Vec<Input>>>> + Send;
}

impl EmbedExt for PoolHandle<EmbedBackend> {
    fn embed(&self, text: Input) -> impl Future<Output = Result<Vector, PoolError>> + Send {
        self.call(text)
    }

    fn embed_timeout(
        &self,
        text: Input,
        wait: Duration,
    ) -> impl Future<Output = Result<Vector, PoolError>> + Send {
        self.call_timeout(text, wait)
    }

    fn try_embed(
        &self,
        text: Input,
    ) -> impl Future<Output = Result<Vector, CallError<Input>>> + Send {
        self.try_call(text)
    }

    fn embed_batch(
        &self,
        texts: Vec<Input>,
    ) -> impl Future<Output = Result<Vec<Vector>, PoolError>> + Send {
        self.call_batch(texts)
    }

    fn embed_batch_timeout(
        &self,
        texts: Vec<Input>,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Vector>, PoolError>> + Send {
        self.call_batch_timeout(texts, wait)
    }

    fn try_embed_batch(
        &self,
        texts: Vec<Input>,
    ) -> impl Future<Output = Result<Vec<Vector>, CallError<Vec<Input>>>> + Send {
        self.try_call_batch(texts)
    }
}
