//! Serving a simulator on its own port.

use std::{io, net::SocketAddr};

use axum::Router;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A simulator listening on a local port. Dropping it stops the server; call
/// [`RunningSandbox::shutdown`] to also wait until it has stopped.
#[derive(Debug)]
pub struct RunningSandbox {
    /// The address actually bound (the real port when asked for port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningSandbox {
    /// The base URL to point a client at, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets requests in flight finish and waits
    /// for the server to stop.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.signal_stop();
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may already have stopped on its own: nothing left to tell.
            let _ = stop.send(());
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Binds `addr` and serves `router` in a background task, with the peer address
/// available to handlers (`ConnectInfo`) and graceful shutdown.
pub(crate) async fn serve(router: Router, addr: SocketAddr) -> io::Result<RunningSandbox> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                // A dropped sender means the same as an explicit stop.
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningSandbox {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
