//! Integration tests of the centralino binary crate: the running process seen from
//! a Python grpcio client, the CLI, the docker-compose file checked against the
//! code, `up` with each channel adapter (email, SMS, voice, desk), and the built-in demo.

mod burst;
mod cli;
mod compose;
mod contract;
mod demo;
mod desk;
mod email;
mod outage;
mod python;
mod sms;
mod split_brain;
mod voice;
mod web;

/// `up` with `config`, until the returned sender is used (or dropped).
pub async fn start_up(
    config: &centralino::Config,
) -> (centralino::Running, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = centralino::up(config, async {
        let _ = stopped.await;
    })
    .await
    .expect("up starts");
    (running, stop)
}
