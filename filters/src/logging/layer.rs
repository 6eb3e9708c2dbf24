use tower::Layer;
use tracing::Level;

use super::LoggingService;

/// Wraps a view's service in [`LoggingService`].
///
/// ```
/// use tether::filters::LoggingLayer;
/// let quiet = LoggingLayer::new().with_level(tracing::Level::DEBUG);
/// # let _ = quiet;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LoggingLayer {
    level: Level,
}

impl LoggingLayer {
    /// Logs calls at `INFO`, failures at `WARN`.
    pub fn new() -> Self {
        LoggingLayer { level: Level::INFO }
    }

    /// Logs successful calls (and opens spans) at `level` instead.
    pub fn with_level(self, level: Level) -> Self {
        LoggingLayer { level }
    }
}

impl Default for LoggingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for LoggingLayer {
    type Service = LoggingService<S>;

    fn layer(&self, inner: S) -> LoggingService<S> {
        LoggingService::new(inner, self.level)
    }
}
