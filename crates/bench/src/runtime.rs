//! A runtime of its own for everything that serves (the simulators, the
//! in-process baseline and, in the smoke test, the gateway), so that the load
//! generator's tasks and the servers' tasks do not share worker threads, as
//! they would not in production.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A multi-threaded runtime on its own thread; dropping it shuts it down.
pub struct ServerRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl ServerRuntime {
    pub fn start(workers: usize) -> anyhow::Result<ServerRuntime> {
        let (ready, handle) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("bench-servers".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers.max(1))
                    .thread_name("bench-server")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    // A dropped sender means stop, too.
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .context("cannot start the servers' thread")?;
        let handle = handle
            .recv()
            .context("the servers' thread stopped at once")?
            .context("cannot build the servers' runtime")?;
        Ok(ServerRuntime {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `future` on the servers' runtime and waits for its output.
    pub async fn run<F>(&self, future: F) -> anyhow::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|error| anyhow!("a server task failed: {error}"))
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
