//! The contract between the interface macro and the runtime.
//!
//! Everything generated code touches is here, under fully qualified paths,
//! so generated code compiles inside `#![no_implicit_prelude]`. Not a
//! public API: it changes with the macro.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use std::boxed::Box;
pub use std::sync::Arc;

pub use crate::interface::{InterfaceDescriptor, MethodDescriptor, Param};
pub use crate::schema;
pub use crate::schema::Schema;
pub use crate::{
    BoxFuture, Call, Client, Context, Detail, Error, Interface, Message, Method, Ref, Selector,
    Serve, Target, Value, View,
};
pub use serde;

pub use crate::value::{AsBytes, ByteVec, Codec, Decoder, decode_wire, encode_into};

/// Reads a typed stub that arrived as an argument or a result of a remote
/// call; fails if the reference offers another interface.
pub fn deserialize_client<'de, C, D>(deserializer: D) -> Result<C, D::Error>
where
    C: crate::Client,
    D: serde::Deserializer<'de>,
{
    let reference = crate::travel::deserialize_ref(deserializer)?;
    C::from_ref(reference).map_err(|e| {
        let message = e.message().to_string();
        crate::travel::refuse(e);
        <D::Error as serde::de::Error>::custom(message)
    })
}

/// Reads an untyped reference that arrived in a remote call's value.
pub fn deserialize_ref<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ref, D::Error> {
    crate::travel::deserialize_ref(deserializer)
}

/// How a method of arguments `A` and result `R` goes to the callee.
#[allow(missing_debug_implementations)] // function pointers, nothing to show
pub struct Wire<A: 'static, R: 'static> {
    /// Copies the arguments, for a multicast.
    pub cloner: Option<fn(&A) -> Option<A>>,
    /// Encodes and decodes them.
    pub codec: &'static Codec<A, R>,
    /// Takes the result out of the reply (a generated function that calls
    /// [`take_result`] with `codec`).
    pub take: fn(Value) -> Result<R, Value>,
}

/// Takes the result `R` out of a reply, decoding it with `codec`.
pub fn take_result<A: Any + Send, R: Any + Send>(
    reply: Value,
    codec: &'static Codec<A, R>,
) -> Result<R, Value> {
    reply.into_result_with::<A, R>(codec)
}

/// The stub's side of a method returning `R`.
pub fn call<A, R>(target: &Ref, selector: Selector, args: A, wire: Wire<A, R>) -> Call<R>
where
    A: Any + Send,
    R: Any + Send,
{
    let args = Value::call_with::<A, R>(args, wire.cloner, wire.codec);
    Call::start(target, selector, args, wire.take, keep)
}

/// The stub's side of a method returning `Result<T, E>`.
pub fn call_fallible<A, T, E>(
    target: &Ref,
    selector: Selector,
    args: A,
    wire: Wire<A, T>,
) -> Call<T, E>
where
    A: Any + Send,
    T: Any + Send,
    E: Any + Send + DeserializeOwned,
{
    let args = Value::call_with::<A, T>(args, wire.cloner, wire.codec);
    Call::start(target, selector, args, wire.take, Error::decode_callee::<E>)
}

fn keep(e: Error) -> Error {
    e
}

/// The parts of a message a skeleton works with.
pub fn open(message: Message) -> (Target, Selector, Value, Context) {
    message.into_parts()
}

/// The object the target holds, as a `T`.
pub fn object<T: Any>(target: &Target) -> Result<&T, Error> {
    target.object_as::<T>().ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Internal,
            format!(
                "{} is not served by an object of type {}",
                target.interface().name(),
                std::any::type_name::<T>()
            ),
        )
    })
}

/// The skeleton's side of every method: runs the method's future with the
/// message's context as the task's current context, turns a panic into
/// [`ErrorKind::Failed`](crate::ErrorKind::Failed), and ends the call at
/// its deadline.
pub fn run<F: Future>(
    context: Context,
    target: &Target,
    selector: Selector,
    method: F,
) -> Run<'_, F> {
    let now_or_never = context.deadline().map(|deadline| {
        (Instant::now() < deadline).then(|| Box::pin(tokio::time::sleep_until(deadline.into())))
    });
    let (timer, expired) = match now_or_never {
        None => (None, false),
        Some(Some(timer)) => (Some(timer), false),
        Some(None) => (None, true),
    };
    Run {
        body: context.scope(AssertUnwindSafe(method).catch_unwind()),
        timer,
        expired,
        target,
        selector,
    }
}

pin_project_lite::pin_project! {
    /// The future [`run`] returns.
    pub struct Run<'a, F> {
        #[pin]
        body: crate::Scoped<futures_util::future::CatchUnwind<AssertUnwindSafe<F>>>,
        // Boxed, so that calls without a deadline carry no timer.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        expired: bool,
        target: &'a Target,
        selector: Selector,
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let method =
            || crate::MethodPath::new(this.target.interface().name(), this.selector.name());
        if *this.expired {
            return Poll::Ready(Err(deadline_exceeded(method())));
        }
        if let Poll::Ready(outcome) = this.body.poll(cx) {
            return Poll::Ready(outcome.map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_string());
                Error::new(
                    crate::ErrorKind::Failed,
                    format!("{} panicked: {what}", method()),
                )
            }));
        }
        if let Some(timer) = this.timer {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(deadline_exceeded(method())));
            }
        }
        Poll::Pending
    }
}

fn deadline_exceeded(method: crate::MethodPath) -> Error {
    Error::new(
        crate::ErrorKind::DeadlineExceeded,
        format!("{method} did not complete before the call's deadline"),
    )
}

/// Takes the argument tuple `A` out of the message's arguments.
pub fn take_args<A: Any + Send, R: Any + Send>(
    args: &mut Value,
    codec: &'static Codec<A, R>,
) -> Result<A, Error> {
    args.take_args_with::<A, R>(codec.decode_args)
}

/// The reply of a method returning `R`.
pub fn reply<A: Any + Send, R: Any + Send>(
    slot: Value,
    result: R,
    codec: &'static Codec<A, R>,
) -> Result<Value, Error> {
    Ok(slot.put_result_with::<A, R>(result, codec))
}

/// The reply of a method returning `Result<T, E>`.
pub fn reply_fallible<A: Any + Send, T: Any + Send, E: Any + Send + Serialize + std::fmt::Debug>(
    slot: Value,
    result: Result<T, E>,
    method: &'static str,
    codec: &'static Codec<A, T>,
) -> Result<Value, Error> {
    match result {
        Ok(t) => Ok(slot.put_result_with::<A, T>(t, codec)),
        Err(e) => {
            let message = format!("{method} returned {e:?}");
            Err(Error::callee_failed(Value::serializable(e), message))
        }
    }
}

/// The reply to a selector the interface does not have.
pub fn unknown_method(message: Message) -> BoxFuture<'static, Result<Value, Error>> {
    let e = Error::new(
        crate::ErrorKind::UnknownMethod,
        format!(
            "{} has no method with selector {:08x}",
            message.target().interface().name(),
            message.selector().id()
        ),
    );
    Box::pin(async move { Err(e) })
}

/// Checks at compile time that a parameter or result type can travel.
pub const fn assert_wire_type<T: Serialize + DeserializeOwned + Send + 'static>() {}

/// Checks at compile time that a method's error type can travel and be
/// shown in messages.
pub const fn assert_error_type<
    T: Serialize + DeserializeOwned + Send + std::fmt::Debug + 'static,
>() {
}

/// Picks how a multicast copies an argument tuple: `Clone` when the type
/// has it, otherwise a postcard round trip (autoderef specialization; call
/// as `(&&&Probe::<T>::new()).cloner()`). The last level never applies to a
/// correct interface; it keeps a non-serde argument down to the one error
/// `assert_wire_type` reports at the user's type.
#[derive(Debug)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen when `T: Clone`.
pub trait ViaClone<T> {
    /// The copier.
    fn cloner(&self) -> Option<fn(&T) -> Option<T>>;
}

impl<T: Clone> ViaClone<T> for &&Probe<T> {
    fn cloner(&self) -> Option<fn(&T) -> Option<T>> {
        Some(|t| Some(t.clone()))
    }
}

/// Chosen when `T` is not `Clone` but travels by serde.
pub trait ViaSerde<T> {
    /// The copier.
    fn cloner(&self) -> Option<fn(&T) -> Option<T>>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for &Probe<T> {
    fn cloner(&self) -> Option<fn(&T) -> Option<T>> {
        Some(|t| {
            let bytes = postcard::to_allocvec(t).ok()?;
            postcard::from_bytes(&bytes).ok()
        })
    }
}

/// Chosen otherwise: no copies.
pub trait ViaNothing<T> {
    /// No copier.
    fn cloner(&self) -> Option<fn(&T) -> Option<T>>;
}

impl<T> ViaNothing<T> for Probe<T> {
    fn cloner(&self) -> Option<fn(&T) -> Option<T>> {
        None
    }
}
