//! Placing a call: an INVITE with our SDP offer from a fresh RTP port, and
//! reading the far end's final answer.

use rsipstack::dialog::dialog::DialogStateReceiver;
use rsipstack::dialog::invitation::{InviteAsyncResult, InviteOption};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::Uri;

use centralino_telephony::g711::Codec;
use centralino_telephony::sdp;

use crate::Shared;
use crate::media::{CODECS, Leg};

/// A call being placed.
pub(crate) struct Dialing {
    pub dialog: InviteDialog,
    pub states: DialogStateReceiver,
    pub answer: tokio::task::JoinHandle<InviteAsyncResult>,
    /// Its remote address is known once the far end answers.
    pub leg: Leg,
    /// Takes the dialog out of the layer when the call is over (carried on
    /// into the bridge when it is answered).
    pub forget: ForgetDialog,
}

/// Removes a dialog we placed from the dialog layer when dropped: the layer
/// keeps every dialog it created until told (server dialogs are removed by
/// the SIP loop when their call task ends).
pub(crate) struct ForgetDialog {
    dialogs: std::sync::Arc<rsipstack::dialog::dialog_layer::DialogLayer>,
    /// The id it was created under (no remote tag yet) and the dialog,
    /// whose id gains the far end's tag once it answers: both are keys.
    early: rsipstack::dialog::DialogId,
    dialog: InviteDialog,
}

impl ForgetDialog {
    pub(crate) fn new(
        dialogs: std::sync::Arc<rsipstack::dialog::dialog_layer::DialogLayer>,
        dialog: &InviteDialog,
    ) -> Self {
        Self {
            dialogs,
            early: dialog.id(),
            dialog: dialog.clone(),
        }
    }
}

impl Drop for ForgetDialog {
    fn drop(&mut self) {
        self.dialogs.remove_dialog(&self.early);
        self.dialogs.remove_dialog(&self.dialog.id());
    }
}

/// Why a call did not connect, as `routing.agent_not_reached` and the CDR
/// name it.
pub(crate) type Failure = &'static str;

/// Sends the INVITE to `target`, showing `from_user` as the caller.
pub(crate) async fn start(
    shared: &Shared,
    target: Uri,
    from_user: Option<&str>,
    codec: Codec,
) -> Result<Dialing, Failure> {
    let socket = shared.rtp.open().await.map_err(|e| {
        tracing::error!(error = %e, "voice: cannot open an RTP port");
        "unreachable"
    })?;
    let pending = sdp::Negotiated {
        remote: std::net::SocketAddr::new(socket.1.ip(), 0),
        codec,
        telephone_event: None,
        ptime: 20,
        direction: sdp::Direction::SendRecv,
    };
    let leg = Leg::new(socket, &pending);
    let offer = sdp::offer(leg.announced, leg.session.0, leg.session.1, 101);
    let (state_tx, states) = shared.dialogs.new_dialog_state_channel();
    let option = InviteOption {
        caller: shared.caller_uri(from_user),
        callee: target,
        contact: shared.contact.clone(),
        content_type: Some("application/sdp".into()),
        offer: Some(offer.into_bytes()),
        ..Default::default()
    };
    let (dialog, answer) = shared
        .dialogs
        .do_invite_async(option, state_tx)
        .map_err(|e| {
            tracing::warn!(error = %e, "voice: could not send the INVITE");
            "unreachable"
        })?;
    Ok(Dialing {
        forget: ForgetDialog::new(shared.dialogs.clone(), &dialog),
        dialog,
        states,
        answer,
        leg,
    })
}

/// Reads the INVITE's final answer: on 2xx with usable audio the leg points
/// at the far end; otherwise why it failed (the dialog is hung up when it
/// answered with audio we cannot use).
pub(crate) async fn answered(
    dialing: &mut Dialing,
    result: Result<InviteAsyncResult, tokio::task::JoinError>,
) -> Result<(), Failure> {
    let response = match result {
        Ok(Ok((_, Some(resp)))) => resp,
        _ => return Err("unreachable"),
    };
    match response.status_code.code() {
        200..=299 => {}
        486 | 600 | 603 => return Err("busy"),
        408 | 480 | 487 => return Err("no-answer"),
        _ => return Err("unreachable"),
    }
    let neg = std::str::from_utf8(&response.body)
        .map_err(|e| e.to_string())
        .and_then(|t| sdp::parse(t).map_err(|e| e.to_string()))
        .and_then(|s| sdp::negotiate(&s, &CODECS).map_err(|e| e.to_string()));
    match neg {
        Ok(neg) => {
            dialing.leg.retarget(&neg);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "voice: answered without usable audio");
            let _ = dialing.dialog.hangup().await;
            Err("unreachable")
        }
    }
}
