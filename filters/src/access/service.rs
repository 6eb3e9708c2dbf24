use std::sync::Arc;
use std::task::{Context, Poll};

use tether_semantics::{BoxFuture, Error, ErrorKind, Message, boxed};
use tower::Service;

use super::layer::Rule;

/// Lets a call through only if the view's policy allows its principal to
/// call its method; see the [module](super) docs.
#[derive(Clone, Debug)]
pub struct AccessService<S> {
    inner: S,
    rules: Arc<[Rule]>,
}

impl<S> AccessService<S> {
    pub(crate) fn new(inner: S, rules: Arc<[Rule]>) -> Self {
        AccessService { inner, rules }
    }
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A rule that names methods of another interface than the view's:
    /// the policy is a mistake, and every call says so.
    fn misplaced(&self, message: &Message) -> Option<Error> {
        let offered = message.target().interface();
        let rule = self.rules.iter().find(|rule| {
            rule.interface.is_some_and(|i| {
                offered.fingerprint() != 0 && i.fingerprint() != offered.fingerprint()
            })
        })?;
        let named = rule.interface.map_or("?", |i| i.name());
        tracing::error!(
            view = message.target().view(),
            offers = offered.name(),
            rule = named,
            "an access rule names methods of another interface than the view offers"
        );
        Some(Error::new(
            ErrorKind::Internal,
            format!(
                "view {:?} offers {}, but its access rule for {} names methods of {named}",
                message.target().view(),
                offered.name(),
                rule.who
            ),
        ))
    }

    fn allows(&self, message: &Message) -> bool {
        let principal = message.context().principal();
        let id = message.selector().id();
        self.rules.iter().any(|rule| {
            rule.methods.as_ref().is_none_or(|m| m.contains(&id)) && rule.who.admits(principal)
        })
    }
}

impl<S> Service<Message> for AccessService<S>
where
    S: Service<Message>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: From<Error> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Boxed, so that an allowed call's inner future passes through as it
    /// is (see [`boxed`]).
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        if let Some(error) = self.misplaced(&message) {
            return Box::pin(std::future::ready(Err(S::Error::from(error))));
        }
        if self.allows(&message) {
            return boxed(self.inner.call(message));
        }
        let who = message.context().principal().map_or_else(
            || "an anonymous caller".to_string(),
            |p| format!("principal {:?}", p.name()),
        );
        let error = Error::new(
            ErrorKind::AccessDenied,
            format!(
                "{who} may not call {} through view {:?}",
                message.method_path(),
                message.target().view()
            ),
        );
        tracing::warn!(
            node = %message.target().node(),
            object = %message.target().object(),
            view = message.target().view(),
            method = %message.method_path(),
            %who,
            "access denied"
        );
        Box::pin(std::future::ready(Err(S::Error::from(error))))
    }
}
