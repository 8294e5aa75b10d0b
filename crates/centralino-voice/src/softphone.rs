//! A minimal SIP phone, for `centralino demo` (callers through the IVR and
//! the agents' phones) and for anyone who needs one without installing a
//! softphone: it places calls with G.711 audio (silence) and RFC 4733 keys,
//! and answers calls, hanging up after a while. Built on the adapter's own
//! endpoint, SDP and RTP code, so what it speaks is what the adapter speaks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use centralino_telephony::sdp;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, StatusCode};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::dial::ForgetDialog;
use crate::media::{CODECS, FRAME, Leg, RtpPorts};
use crate::sip::Endpoint;

/// How long an answering phone talks before hanging up, drawn per call.
pub type TalkTime = Arc<dyn Fn() -> Duration + Send + Sync>;

/// How a call the phone placed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered; `by_far_end` when the other side hung up first.
    Answered { talked: Duration, by_far_end: bool },
    /// Not answered: the SIP status, or 0 for no answer at all.
    NotAnswered(u16),
}

/// A running phone: one SIP endpoint on loopback or any address.
pub struct Softphone {
    dialogs: Arc<DialogLayer>,
    contact: rsipstack::sip::Uri,
    addr: SocketAddr,
    rtp: Arc<RtpPorts>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Softphone {
    /// Binds `listen` (UDP and TCP; a specific address, which its SDP and
    /// Contact announce). With `answer`, it answers every call after a short
    /// ring and hangs up after the time drawn; without, it refuses calls (486).
    pub async fn start(listen: SocketAddr, answer: Option<TalkTime>) -> Result<Self, String> {
        if listen.ip().is_unspecified() {
            return Err(format!(
                "{listen}: a softphone listens on a specific address (it announces it)"
            ));
        }
        let endpoint = Endpoint::bind(listen, None).await?;
        let rtp = Arc::new(RtpPorts::new(listen.ip(), listen.ip(), None));
        let (stop, stopped) = watch::channel(false);
        let dialogs = endpoint.dialogs.clone();
        let contact = endpoint.contact.clone();
        let addr = endpoint.addr;
        let task = tokio::spawn(serve(endpoint, rtp.clone(), answer, stopped));
        Ok(Self {
            dialogs,
            contact,
            addr,
            rtp,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Dialogs the phone still keeps (0 once its calls are over).
    pub fn open_dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Calls `target` as `from_user`; answers once the far end has
    /// answered with usable audio, or says why it did not within `ring_for`.
    pub async fn dial(
        &self,
        target: &str,
        from_user: &str,
        ring_for: Duration,
    ) -> Result<ActiveCall, CallEnd> {
        let failed = |e: String| {
            // The detail may quote the URIs (numbers): only at debug.
            tracing::warn!("softphone: the call was not placed");
            tracing::debug!(error = %e, "softphone: why the call was not placed");
            CallEnd::NotAnswered(0)
        };
        let callee = rsipstack::sip::Uri::try_from(target).map_err(|e| failed(e.to_string()))?;
        let mut caller = self.contact.clone();
        caller.auth = Some(rsipstack::sip::Auth {
            user: from_user.to_owned(),
            password: None,
        });
        let socket = self.rtp.open().await.map_err(|e| failed(e.to_string()))?;
        let pending = sdp::Negotiated {
            remote: SocketAddr::new(socket.1.ip(), 0),
            codec: CODECS[0],
            telephone_event: None,
            ptime: 20,
            direction: sdp::Direction::SendRecv,
        };
        let mut leg = Leg::new(socket, &pending);
        let offer = sdp::offer(leg.announced, leg.session.0, leg.session.1, 101);
        let (state_tx, states) = self.dialogs.new_dialog_state_channel();
        let option = InviteOption {
            caller,
            callee,
            contact: self.contact.clone(),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.into_bytes()),
            ..Default::default()
        };
        let (dialog, answer) = self
            .dialogs
            .do_invite_async(option, state_tx)
            .map_err(|e| failed(e.to_string()))?;
        // However the call ends, its dialog leaves the layer.
        let forget = ForgetDialog::new(self.dialogs.clone(), &dialog);
        let response = match tokio::time::timeout(ring_for, answer).await {
            Ok(Ok(Ok((_, Some(resp))))) => resp,
            Ok(_) => return Err(CallEnd::NotAnswered(0)),
            Err(_) => {
                let _ = dialog.hangup().await;
                return Err(CallEnd::NotAnswered(0));
            }
        };
        let code = response.status_code.code();
        if !(200..300).contains(&code) {
            return Err(CallEnd::NotAnswered(code));
        }
        let neg = std::str::from_utf8(&response.body)
            .map_err(|e| e.to_string())
            .and_then(|t| sdp::parse(t).map_err(|e| e.to_string()))
            .and_then(|s| sdp::negotiate(&s, &CODECS).map_err(|e| e.to_string()));
        match neg {
            Ok(neg) => leg.retarget(&neg),
            Err(e) => {
                let _ = dialog.hangup().await;
                return Err(failed(format!("answered without usable audio: {e}")));
            }
        }
        Ok(ActiveCall {
            dialog,
            states,
            leg,
            answered: Instant::now(),
            _forget: forget,
        })
    }

    /// Hangs up the calls it answered and closes the endpoint. Calls it
    /// placed end first ([`ActiveCall::stay_until`] hangs up when asked):
    /// once closed, it can no longer say goodbye.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A call this phone placed, answered.
pub struct ActiveCall {
    dialog: InviteDialog,
    states: DialogStateReceiver,
    leg: Leg,
    answered: Instant,
    _forget: ForgetDialog,
}

impl ActiveCall {
    /// Presses `keys` (RFC 4733, one every half second from `keys_after`)
    /// and stays on the line until the far end hangs up or `give_up`
    /// passes (then hangs up itself).
    pub async fn stay(self, keys: &str, keys_after: Duration, give_up: Duration) -> CallEnd {
        self.stay_until(keys, keys_after, give_up, std::future::pending())
            .await
    }

    /// [`ActiveCall::stay`], hanging up when `leave` resolves first.
    pub async fn stay_until(
        mut self,
        keys: &str,
        keys_after: Duration,
        give_up: Duration,
        leave: impl std::future::Future<Output = ()>,
    ) -> CallEnd {
        let start = Instant::now() + keys_after;
        let keys = keys
            .chars()
            .zip(0u32..)
            .map(|(k, i)| (start + Duration::from_millis(500) * i, k))
            .collect();
        let until = Instant::now() + give_up;
        let by_far_end = tokio::select! {
            ended = talk(&mut self.leg, &mut self.states, until, keys) => ended,
            () = leave => false,
        };
        if !by_far_end {
            let _ = self.dialog.hangup().await;
        }
        CallEnd::Answered {
            talked: self.answered.elapsed(),
            by_far_end,
        }
    }
}

/// Sends silence every 20 ms (a key press instead, once its time has come)
/// and reads what arrives, until the far end hangs up (`true`) or `until`
/// passes (`false`).
async fn talk(
    leg: &mut Leg,
    states: &mut DialogStateReceiver,
    until: Instant,
    mut keys: Vec<(Instant, char)>,
) -> bool {
    // Latest first, so the next one due is at the end.
    keys.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let silence = [0i16; FRAME];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    let mut pressing: Option<(char, u8)> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return false,
            state = states.recv() => match state {
                None | Some(DialogState::Terminated(..)) => return true,
                // A re-INVITE or UPDATE (hold, a new address) gets our
                // answer and the leg follows it.
                Some(DialogState::Updated(_, req, handle)) => {
                    crate::bridge::answer_update(leg, &req, handle).await;
                }
                Some(DialogState::Info(_, _, handle))
                | Some(DialogState::Options(_, _, handle))
                | Some(DialogState::Notify(_, _, handle)) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                Some(_) => {}
            },
            received = leg.socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    let _ = leg.receive(&buf[..n], from);
                }
            }
            _ = tick.tick() => {
                if pressing.is_none()
                    && let Some(&(at, key)) = keys.last()
                    && Instant::now() >= at
                {
                    keys.pop();
                    pressing = Some((key, 0));
                }
                match pressing {
                    Some((key, n)) => {
                        let over = leg.send_key_packet(key, n).await;
                        pressing = (!over).then_some((key, n + 1));
                    }
                    None => leg.send_samples(&silence).await,
                }
            }
        }
    }
}

/// The phone's SIP loop: requests inside a dialog go to it; a new INVITE is
/// answered (or refused); the rest gets a proper answer.
async fn serve(
    endpoint: Endpoint,
    rtp: Arc<RtpPorts>,
    answer: Option<TalkTime>,
    mut stop: watch::Receiver<bool>,
) {
    let Endpoint {
        endpoint,
        mut incoming,
        cancel,
        dialogs,
        contact,
        ..
    } = endpoint;
    let inner = endpoint.inner.clone();
    let serving = tokio::spawn(async move {
        let _ = inner.serve().await;
    });
    let mut calls = tokio::task::JoinSet::new();
    loop {
        let mut tx = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
        };
        if let Some(mut dialog) = dialogs.match_dialog(&tx) {
            tokio::spawn(async move {
                let _ = dialog.handle(&mut tx).await;
            });
            continue;
        }
        match (tx.original.method, &answer) {
            (Method::Invite, Some(talk_time)) => {
                let (state_tx, states) = dialogs.new_dialog_state_channel();
                let Ok(dialog) =
                    dialogs.get_or_create_server_invite(&tx, state_tx, None, Some(contact.clone()))
                else {
                    let _ = tx.reply(StatusCode::BadRequest).await;
                    continue;
                };
                let invite = tx.original.clone();
                let mut server = dialog.clone();
                tokio::spawn(async move {
                    let _ = server.handle(&mut tx).await;
                });
                let talk_for = talk_time();
                let rtp = rtp.clone();
                let dialogs = dialogs.clone();
                let stop = stop.clone();
                calls.spawn(async move {
                    let id = dialog.id();
                    answer_call(dialog, states, invite, &rtp, talk_for, stop).await;
                    dialogs.remove_dialog(&id);
                });
            }
            (Method::Invite, None) => {
                let _ = tx.reply(StatusCode::BusyHere).await;
            }
            (Method::Options, _) => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            (Method::Ack, _) => {}
            _ => {
                let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
            }
        }
    }
    while calls.join_next().await.is_some() {}
    cancel.cancel();
    let _ = serving.await;
}

/// Rings for a moment, answers with audio, talks for `talk_for` (or until
/// the caller hangs up, or the phone stops) and hangs up.
async fn answer_call(
    dialog: InviteDialog,
    mut states: DialogStateReceiver,
    invite: rsipstack::sip::Request,
    rtp: &RtpPorts,
    talk_for: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let offer = std::str::from_utf8(&invite.body)
        .map_err(|e| e.to_string())
        .and_then(|t| sdp::parse(t).map_err(|e| e.to_string()))
        .and_then(|p| {
            sdp::negotiate(&p, &CODECS)
                .map(|n| (p, n))
                .map_err(|e| e.to_string())
        });
    let Ok((offer, neg)) = offer else {
        let _ = dialog.reject(Some(StatusCode::NotAcceptableHere), None);
        return;
    };
    let Ok(socket) = rtp.open().await else {
        let _ = dialog.reject(Some(StatusCode::ServiceUnavailable), None);
        return;
    };
    let _ = dialog.ringing(None, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut leg = Leg::new(socket, &neg);
    let answer = sdp::answer_to(&offer, &neg, leg.announced, leg.session.0, leg.session.1);
    if dialog
        .accept(
            Some(vec![Header::ContentType("application/sdp".into())]),
            Some(answer.into_bytes()),
        )
        .is_err()
    {
        return;
    }
    let until = Instant::now() + talk_for;
    let ended = tokio::select! {
        by_far_end = talk(&mut leg, &mut states, until, Vec::new()) => by_far_end,
        _ = stop.wait_for(|s| *s) => false,
    };
    if !ended {
        let _ = dialog.hangup().await;
    }
}
