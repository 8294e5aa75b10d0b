//! A service under test in a Tokio runtime of its own, so a test can stop it
//! gracefully or drop it at once, as `kill -9` would.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

/// Resolves when the test asks the service to stop.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Isolated {
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl Isolated {
    /// Runs `service` on a new two-thread runtime. It reports what the test
    /// needs (addresses, handles) through its `ready` sender, runs until the
    /// stop signal resolves, and returns once it has stopped. Fails the test
    /// if it is not ready within 30 s (or panicked before).
    pub async fn start<R, F, Fut>(service: F) -> (Self, R)
    where
        R: Send + 'static,
        F: FnOnce(oneshot::Sender<R>, StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start_within(Duration::from_secs(30), service)
            .await
            .expect("the service is ready within 30 s (see its panic above, if any)")
    }

    /// The same, but `None` (the runtime dropped) when the service is not
    /// ready within `limit`: a standby waiting for the active instance.
    pub async fn start_within<R, F, Fut>(limit: Duration, service: F) -> Option<(Self, R)>
    where
        R: Send + 'static,
        F: FnOnce(oneshot::Sender<R>, StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the service under test");
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        rt.spawn(async move {
            let signal: StopSignal = Box::pin(async move {
                let _ = stop_rx.await;
            });
            service(ready_tx, signal).await;
            let _ = done_tx.send(());
        });
        match tokio::time::timeout(limit, ready).await {
            Ok(Ok(value)) => Some((
                Self {
                    rt: Some(rt),
                    stop: Some(stop),
                    done: Some(done),
                },
                value,
            )),
            _ => {
                rt.shutdown_background();
                None
            }
        }
    }

    /// Asks the service to stop and waits (up to 15 s) until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Drops the runtime at once: no task runs another step.
    pub fn crash(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
