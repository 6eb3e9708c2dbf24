//! The one error type of a call, and its kinds.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;

use crate::{BoxError, Value};

/// What went wrong with a call, told as what the caller should do about it.
///
/// Modelled on Cap'n Proto's exception types: the kind says how to react,
/// the message says what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The callee ran and failed: it returned its own error (see
    /// [`Error::callee`]) or panicked. Retrying repeats the failure unless
    /// the cause changes.
    Failed,
    /// The reference names no object or view (it was removed, or never
    /// existed here). Get a fresh reference.
    UnknownObject,
    /// The object, through this view, does not offer the method. Fix the
    /// caller or ask for another view.
    UnknownMethod,
    /// The arguments did not have the types the method expects. A caller
    /// bug or an interface mismatch.
    BadArguments,
    /// The caller's interface differs from the object's (fingerprints
    /// differ). Rebuild the caller against the object's interface.
    Incompatible,
    /// A filter refused the caller. Retrying with the same principal fails
    /// the same way.
    AccessDenied,
    /// The callee (or a filter in front of it) is busy. Retry later, with
    /// backoff.
    Overloaded,
    /// The call's deadline passed before it completed. The call may or may
    /// not have taken effect.
    DeadlineExceeded,
    /// The way to the callee is gone (connection closed, runtime shut
    /// down). The call may or may not have taken effect; reconnect first.
    Disconnected,
    /// A bug or misuse on the caller's side of Tether, such as a call that
    /// needs a tokio runtime made outside one.
    Internal,
}

impl ErrorKind {
    /// A short lowercase name, as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "call failed",
            ErrorKind::UnknownObject => "unknown object",
            ErrorKind::UnknownMethod => "unknown method",
            ErrorKind::BadArguments => "bad arguments",
            ErrorKind::Incompatible => "incompatible interface",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A callee's own error, type-erased.
///
/// Held behind a mutex so that [`Error`] stays `Sync` (and so converts into
/// tower's `BoxError`) whatever the callee's error type is. Typed stubs turn
/// it back into the method's error type; see [`Error::downcast_callee`].
pub struct Detail(Mutex<Value>);

impl Detail {
    /// Wraps a callee's error value.
    pub fn new(value: Value) -> Self {
        Detail(Mutex::new(value))
    }

    /// The held value.
    pub fn into_value(self) -> Value {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the held value.
    pub fn with<T>(&self, f: impl FnOnce(&Value) -> T) -> T {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|v| fmt::Debug::fmt(v, f))
    }
}

/// The error of a call.
///
/// Every call can fail, locally or remotely, and [`kind`](Error::kind) says
/// how the caller should react. When the method itself returns
/// `Result<T, E>` and the callee returned `Err(e)`, the kind is
/// [`ErrorKind::Failed`] and a typed stub hands back `Error<E>` with
/// [`callee`](Error::callee) set to `e`. Inside filters the callee's error
/// is type-erased ([`Detail`], the default parameter).
///
/// The error is one pointer wide, so `Result<T, Error>` stays small.
///
/// ```
/// use tether::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::Overloaded, "too many calls in flight");
/// assert!(e.is_overloaded());
/// assert_eq!(e.to_string(), "overloaded: too many calls in flight");
/// ```
pub struct Error<E = Detail> {
    inner: Box<Inner<E>>,
}

struct Inner<E> {
    kind: ErrorKind,
    message: Cow<'static, str>,
    callee: Option<E>,
    source: Option<BoxError>,
}

impl<E> Error<E> {
    /// How the caller should react.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// What happened, in words.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The callee's own error, when the method returned `Err`.
    pub fn callee(&self) -> Option<&E> {
        self.inner.callee.as_ref()
    }

    /// Takes the callee's own error out.
    pub fn into_callee(self) -> Option<E> {
        self.inner.callee
    }

    /// Converts the callee's error with `f`.
    pub fn map_callee<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        let Inner {
            kind,
            message,
            callee,
            source,
        } = *self.inner;
        Error {
            inner: Box::new(Inner {
                kind,
                message,
                callee: callee.map(f),
                source,
            }),
        }
    }

    /// The callee failed (returned an error or panicked).
    pub fn is_failed(&self) -> bool {
        self.kind() == ErrorKind::Failed
    }
    /// The reference names no object or view.
    pub fn is_unknown_object(&self) -> bool {
        self.kind() == ErrorKind::UnknownObject
    }
    /// The view does not offer the method.
    pub fn is_unknown_method(&self) -> bool {
        self.kind() == ErrorKind::UnknownMethod
    }
    /// The arguments had the wrong types.
    pub fn is_bad_arguments(&self) -> bool {
        self.kind() == ErrorKind::BadArguments
    }
    /// A filter refused the caller.
    pub fn is_access_denied(&self) -> bool {
        self.kind() == ErrorKind::AccessDenied
    }
    /// The callee is busy; retry later.
    pub fn is_overloaded(&self) -> bool {
        self.kind() == ErrorKind::Overloaded
    }
    /// The deadline passed.
    pub fn is_deadline_exceeded(&self) -> bool {
        self.kind() == ErrorKind::DeadlineExceeded
    }
    /// The way to the callee is gone.
    pub fn is_disconnected(&self) -> bool {
        self.kind() == ErrorKind::Disconnected
    }
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                callee: None,
                source: None,
            }),
        }
    }

    /// The callee returned its own error `callee`.
    pub fn callee_failed(callee: Value, message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Error::new(ErrorKind::Failed, message);
        e.inner.callee = Some(Detail::new(callee));
        e
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Converts the error of any tower service into a Tether error.
    ///
    /// A boxed Tether error is unboxed; tower's `timeout::error::Elapsed`
    /// becomes [`ErrorKind::DeadlineExceeded`] and
    /// `load_shed::error::Overloaded` becomes [`ErrorKind::Overloaded`], so
    /// tower middleware used as a filter reports what it means. Anything
    /// else is [`ErrorKind::Failed`] with the original error as its source.
    pub fn from_boxed(error: BoxError) -> Self {
        let error = match error.downcast::<Error>() {
            Ok(e) => return *e,
            Err(other) => other,
        };
        if error.is::<tower::timeout::error::Elapsed>() {
            return Error::new(ErrorKind::DeadlineExceeded, "a timeout filter elapsed")
                .with_source(error);
        }
        if error.is::<tower::load_shed::error::Overloaded>() {
            return Error::new(
                ErrorKind::Overloaded,
                "a load-shedding filter refused the call",
            )
            .with_source(error);
        }
        Error::new(ErrorKind::Failed, error.to_string()).with_source(error)
    }

    /// Turns the erased callee error into `E`, as a typed stub does.
    ///
    /// If the callee's error is not an `E` (which a correct interface never
    /// produces), the error is kept with no callee value and its message
    /// says what type arrived.
    pub fn downcast_callee<E: std::any::Any>(self) -> Error<E> {
        self.convert_callee(Value::downcast::<E>)
    }

    /// Like [`downcast_callee`](Error::downcast_callee), and also decodes a
    /// callee error that arrived from another node.
    pub fn decode_callee<E: std::any::Any + serde::de::DeserializeOwned>(self) -> Error<E> {
        self.convert_callee(|value| match value.as_encoded() {
            Some(bytes) => postcard::from_bytes::<E>(bytes).map_err(|_| value),
            None => value.downcast::<E>(),
        })
    }

    fn convert_callee<E: std::any::Any>(
        self,
        convert: impl FnOnce(Value) -> Result<E, Value>,
    ) -> Error<E> {
        let Inner {
            kind,
            mut message,
            callee,
            source,
        } = *self.inner;
        let callee = match callee.map(|d| convert(d.into_value())) {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(other)) => {
                message = format!(
                    "{message} (callee error of type {} where {} was expected)",
                    other.type_name(),
                    std::any::type_name::<E>()
                )
                .into();
                None
            }
        };
        Error {
            inner: Box::new(Inner {
                kind,
                message,
                callee,
                source,
            }),
        }
    }
}

impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.message.is_empty() {
            fmt::Display::fmt(&self.inner.kind, f)
        } else {
            write!(f, "{}: {}", self.inner.kind, self.inner.message)
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(c) = &self.inner.callee {
            d.field("callee", c);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl<E: fmt::Debug> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_errors_keep_their_meaning() {
        let e = Error::from_boxed(Box::new(tower::timeout::error::Elapsed::new()));
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        let e = Error::from_boxed(Box::new(tower::load_shed::error::Overloaded::new()));
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        let e = Error::from_boxed(Box::new(Error::new(ErrorKind::AccessDenied, "no")));
        assert_eq!(e.kind(), ErrorKind::AccessDenied);
        let e = Error::from_boxed("odd".into());
        assert_eq!(e.kind(), ErrorKind::Failed);
        assert_eq!(e.message(), "odd");
    }

    #[test]
    fn callee_error_is_typed_again() {
        let e = Error::callee_failed(Value::new(String::from("insufficient")), "deposit");
        let typed: Error<String> = e.downcast_callee();
        assert!(typed.is_failed());
        assert_eq!(typed.callee().map(String::as_str), Some("insufficient"));
    }

    #[test]
    fn a_callee_error_from_another_node_is_decoded() {
        let mut bytes = Vec::new();
        Value::serializable(String::from("overdrawn"))
            .encode(&mut bytes)
            .unwrap();
        let e = Error::callee_failed(Value::encoded(bytes.into()), "withdraw");
        assert!(e.kind() == ErrorKind::Failed);
        let typed: Error<String> = e.decode_callee();
        assert_eq!(typed.callee().map(String::as_str), Some("overdrawn"));
    }

    #[test]
    fn callee_error_of_the_wrong_type_is_reported() {
        let e = Error::callee_failed(Value::new(3_u8), "deposit");
        let typed: Error<String> = e.downcast_callee();
        assert!(typed.callee().is_none());
        assert!(typed.message().contains("u8"), "{}", typed.message());
    }

    #[test]
    fn error_is_small_and_boxable() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        let boxed: BoxError = Error::new(ErrorKind::Failed, "x").into();
        assert!(boxed.is::<Error>());
    }
}
