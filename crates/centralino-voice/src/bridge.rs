//! Two parties talking: RTP relayed both ways (transcoded between PCMU and
//! PCMA when their phones differ) until one of them hangs up.

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TransactionHandle};
use rsipstack::sip::{Header, Request, StatusCode};
use tokio::sync::watch;

use crate::media::{Leg, Received, transcode};

/// Who ended the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HungUp {
    First,
    Second,
    /// The adapter is stopping.
    Stopped,
}

enum Wake {
    FromFirst(usize, std::net::SocketAddr),
    FromSecond(usize, std::net::SocketAddr),
    First(Option<DialogState>),
    Second(Option<DialogState>),
    Stop,
    Nothing,
}

/// Relays until a party hangs up (its dialog ends), sends no RTP for
/// `media_timeout` (it is gone: treated as its hang-up), or `stop`.
pub(crate) async fn relay(
    first: &mut Leg,
    first_states: &mut DialogStateReceiver,
    second: &mut Leg,
    second_states: &mut DialogStateReceiver,
    media_timeout: std::time::Duration,
    stop: &mut watch::Receiver<bool>,
) -> HungUp {
    let mut a = vec![0u8; 2048];
    let mut b = vec![0u8; 2048];
    let mut out = Vec::with_capacity(256);
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let wake = tokio::select! {
            _ = check.tick() => {
                if first.silent_for(media_timeout) {
                    return HungUp::First;
                }
                if second.silent_for(media_timeout) {
                    return HungUp::Second;
                }
                Wake::Nothing
            }
            r = first.socket.recv_from(&mut a) => r.map_or(Wake::Nothing, |(n, from)| Wake::FromFirst(n, from)),
            r = second.socket.recv_from(&mut b) => r.map_or(Wake::Nothing, |(n, from)| Wake::FromSecond(n, from)),
            s = first_states.recv() => Wake::First(s),
            s = second_states.recv() => Wake::Second(s),
            _ = stop.wait_for(|s| *s) => Wake::Stop,
        };
        match wake {
            Wake::FromFirst(n, from) => {
                if let Received::Audio(p) = first.receive(&a[..n.min(a.len())], from) {
                    transcode(first.codec, second.codec, p, &mut out);
                    second.send_payload(&out).await;
                }
            }
            Wake::FromSecond(n, from) => {
                if let Received::Audio(p) = second.receive(&b[..n.min(b.len())], from) {
                    transcode(second.codec, first.codec, p, &mut out);
                    first.send_payload(&out).await;
                }
            }
            Wake::First(Some(DialogState::Updated(_, req, handle))) => {
                answer_update(first, &req, handle).await;
            }
            Wake::Second(Some(DialogState::Updated(_, req, handle))) => {
                answer_update(second, &req, handle).await;
            }
            Wake::First(state) => {
                if !still_up(state).await {
                    return HungUp::First;
                }
            }
            Wake::Second(state) => {
                if !still_up(state).await {
                    return HungUp::Second;
                }
            }
            Wake::Stop => return HungUp::Stopped,
            Wake::Nothing => {}
        }
    }
}

/// A re-INVITE or UPDATE from the party of `leg` (hold, resume, a session
/// refresh, a new address): answered from the leg, which follows it; an
/// offer we cannot take gets 488 and changes nothing.
pub(crate) async fn answer_update(leg: &mut Leg, req: &Request, handle: TransactionHandle) {
    let body = String::from_utf8_lossy(&req.body);
    let sdp = if body.trim().is_empty() {
        leg.offer_again()
    } else {
        leg.answer_again(&body)
    };
    match sdp {
        Ok(sdp) => {
            let _ = handle
                .respond(
                    StatusCode::OK,
                    Some(vec![Header::ContentType("application/sdp".into())]),
                    Some(sdp.into_bytes()),
                )
                .await;
        }
        Err(e) => {
            tracing::info!(error = %e, "voice: new offer refused (488)");
            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
        }
    }
}

/// Answers what a party asks within its call; `false` once the call is over.
pub(crate) async fn still_up(state: Option<DialogState>) -> bool {
    match state {
        None | Some(DialogState::Terminated(..)) => false,
        Some(DialogState::Info(_, _, handle)) | Some(DialogState::Options(_, _, handle)) => {
            let _ = handle.reply(StatusCode::OK).await;
            true
        }
        Some(DialogState::Updated(_, _, handle))
        | Some(DialogState::Notify(_, _, handle))
        | Some(DialogState::Refer(_, _, handle))
        | Some(DialogState::Message(_, _, handle))
        | Some(DialogState::Publish(_, _, handle)) => {
            let _ = handle.reply(StatusCode::NotImplemented).await;
            true
        }
        Some(_) => true,
    }
}
