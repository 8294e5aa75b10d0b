//! The SIP side: one rsipstack endpoint (UDP and TCP on the same address),
//! new INVITEs become call tasks, requests inside a dialog go to it, the rest
//! gets a proper answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{TcpListenerConnection, TransportLayer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::call::{self, Incoming};

pub(crate) struct Endpoint {
    pub endpoint: rsipstack::transaction::endpoint::Endpoint,
    pub incoming: TransactionReceiver,
    pub cancel: CancellationToken,
    pub addr: SocketAddr,
    pub dialogs: Arc<DialogLayer>,
    pub contact: rsipstack::sip::Uri,
}

impl Endpoint {
    /// Binds UDP on `listen`, then TCP on the same address (port 0 picks a
    /// free UDP port that TCP then shares). On a wildcard address, `advertise`
    /// is what Via and Contact carry, so phones can reach us back.
    pub async fn bind(listen: SocketAddr, advertise: Option<IpAddr>) -> Result<Self, String> {
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.clone());
        let external = advertise
            .filter(|_| listen.ip().is_unspecified() && listen.port() != 0)
            .map(|ip| SocketAddr::new(ip, listen.port()));
        let udp = UdpConnection::create_connection(listen, external, Some(cancel.child_token()))
            .await
            .map_err(|e| format!("UDP: {e}"))?;
        let addr = udp
            .get_addr()
            .get_socketaddr()
            .map_err(|e| format!("UDP: {e}"))?;
        transport.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(SocketAddr::new(listen.ip(), addr.port()), external)
            .await
            .map_err(|e| format!("TCP: {e}"))?;
        transport.add_transport(tcp.into());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(concat!("Centralino/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport)
            .with_cancel_token(cancel.clone())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| e.to_string())?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let contact = rsipstack::sip::Uri::try_from(
            format!("sip:centralino@{}", external.unwrap_or(addr)).as_str(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            endpoint,
            incoming,
            cancel,
            addr,
            dialogs,
            contact,
        })
    }

    /// Serves until `stop`; then every call hangs up and the endpoint closes.
    pub async fn run(self, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
        let Endpoint {
            endpoint,
            mut incoming,
            cancel,
            ..
        } = self;
        let inner = endpoint.inner.clone();
        let serve = tokio::spawn(async move {
            if let Err(e) = inner.serve().await {
                tracing::error!(error = %e, "voice: SIP endpoint stopped");
            }
        });
        let mut calls = tokio::task::JoinSet::new();
        let mut stopping = stop.clone();
        loop {
            let tx = tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "voice: a call task failed");
                    }
                    continue;
                }
                tx = incoming.recv() => match tx {
                    Some(tx) => tx,
                    None => break,
                },
            };
            let mut tx = tx;
            if let Some(mut dialog) = shared.dialogs.match_dialog(&tx) {
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!(error = %e, "voice: in-dialog request failed");
                    }
                });
                continue;
            }
            match tx.original.method {
                Method::Invite => {
                    let dialled = tx
                        .original
                        .uri
                        .auth
                        .as_ref()
                        .map(|a| a.user.clone())
                        .unwrap_or_default();
                    let Some(flow) = shared
                        .config
                        .flow_for(&dialled)
                        .and_then(|f| shared.config.flows.get(f))
                    else {
                        tracing::info!(%dialled, "voice: call to a number we do not serve (404)");
                        let _ = tx.reply(StatusCode::NotFound).await;
                        continue;
                    };
                    if shared.active.load(Ordering::Relaxed) >= shared.config.max_calls {
                        tracing::warn!("voice: at max_calls; call refused (503)");
                        let _ = tx.reply(StatusCode::ServiceUnavailable).await;
                        continue;
                    }
                    let (state_tx, states) = shared.dialogs.new_dialog_state_channel();
                    let dialog = match shared.dialogs.get_or_create_server_invite(
                        &tx,
                        state_tx,
                        None,
                        Some(shared.contact.clone()),
                    ) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::info!(error = %e, "voice: INVITE refused (400)");
                            let _ = tx.reply(StatusCode::BadRequest).await;
                            continue;
                        }
                    };
                    let incoming = Incoming {
                        dialog: dialog.clone(),
                        states,
                        invite: tx.original.clone(),
                        flow: Arc::new(flow.clone()),
                        dialled,
                    };
                    // The INVITE transaction (provisional answers, our 200,
                    // the ACK or a CANCEL) runs beside the call.
                    let mut server = dialog;
                    tokio::spawn(async move {
                        if let Err(e) = server.handle(&mut tx).await {
                            tracing::debug!(error = %e, "voice: INVITE transaction ended with an error");
                        }
                    });
                    let shared = shared.clone();
                    let stop = stop.clone();
                    shared.active.fetch_add(1, Ordering::Relaxed);
                    calls.spawn(async move {
                        let id = incoming.dialog.id();
                        call::run(shared.clone(), incoming, stop).await;
                        shared.dialogs.remove_dialog(&id);
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Method::Options => {
                    let _ = tx.reply(StatusCode::OK).await;
                }
                Method::Ack => {} // an ACK for a dialog that is gone: nothing to answer
                _ => {
                    let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                }
            }
        }
        // Stopping: calls hang up and record themselves.
        while calls.join_next().await.is_some() {}
        cancel.cancel();
        let _ = serve.await;
    }
}
