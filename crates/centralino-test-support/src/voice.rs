//! Voice peers for tests: SIPp as the caller (UAC scenarios built from a short
//! script, or any scenario XML) and baresip as an agent phone that answers
//! by itself, each on free local ports, killed when dropped. A missing
//! program fails the test with how to install it; nothing is skipped.
//!
//! Facts these helpers rely on (SIPp 3.6.1 and baresip 1.0.0 of Debian):
//! - SIPp sends RFC 4733 events with `<exec play_dtmf=".."/>`, always with
//!   payload type 96 and from a raw socket (needs root or `CAP_NET_RAW`), in
//!   a new SSRC: 400 ms of RTP "NOOP" packets (payload type 97, 4 bytes),
//!   then 200 ms of events per digit, one digit every 400 ms. It returns at
//!   once; [`Step::Rfc4733`] waits until the last digit ended.
//! - SIPp's `<exec rtp_stream="FILE,-1,0"/>` sends FILE's bytes as they are
//!   (no WAV parsing) as PCMU every 20 ms, from the media port (`-mp`, first
//!   free of 6000, 6002, ...), SSRC `0xCA11xxxx`. So [`Step::Audio`] streams
//!   the data chunk of an 8 kHz μ-law WAV, cut out into a raw file.
//! - baresip answers by itself with `;answermode=auto` on its account and
//!   `regint=0` keeps it from registering; it is driven over `ctrl_tcp`
//!   (netstrings of JSON), which also carries its events.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::mail::free_port;

const SIPP_MISSING: &str =
    "sipp is not installed: apt-get install -y sip-tester (.ci/run does this)";
const BARESIP_MISSING: &str =
    "baresip is not installed: apt-get install -y baresip-core (.ci/run does this)";
const BARESIP_MODULES: &str = "/usr/lib/baresip/modules";

/// Time SIPp's `play_dtmf` needs for `n` digits: 400 ms of filler, silence
/// up to 800 ms, then a digit every 400 ms, each lasting 200 ms; plus 300 ms
/// for the receiver's jitter buffer to deliver the last end-of-event.
fn play_dtmf_duration_ms(digits: usize) -> u64 {
    600 + 400 * digits as u64 + 300
}

fn program(name: &str, missing: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{missing}"))
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(crate::unique(prefix));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A UDP port nothing uses now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free local UDP port")
}

/// A port `p` with UDP `p`, TCP `p` and TCP `p + 1` all free (baresip's SIP
/// over UDP, TCP and TLS).
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let port = free_udp_port();
        if port == u16::MAX {
            continue;
        }
        let ok = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok();
        if ok {
            return port;
        }
    }
    panic!("no free SIP port (UDP+TCP p, TCP p+1) found on 127.0.0.1");
}

// ---------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------

/// What the caller does once the call is answered, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waits this many milliseconds.
    Pause(u64),
    /// Sends these digits (`0-9*#A-D`) as RFC 4733 events (payload type 96)
    /// and waits until the last one ended (400 ms a digit + 900 ms). A
    /// stream started by [`Step::Audio`] is paused meanwhile, because SIPp
    /// sends the events in an SSRC of their own and a receiver that follows
    /// one SSRC at a time (baresip does) loses events interleaved with audio.
    Rfc4733(String),
    /// Sends one SIP INFO, `application/dtmf-relay`, `Signal=<d>` and
    /// `Duration=160`, and expects 200.
    Info(char),
    /// Starts streaming [`CallerScript::audio_wav`] as PCMU, looping, until
    /// the call ends (or [`Step::StopAudio`]).
    Audio,
    /// Pauses the stream [`Step::Audio`] started (the caller goes silent);
    /// a later [`Step::Audio`] resumes it.
    StopAudio,
}

/// How the caller's call ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The caller sends BYE and expects 200.
    Bye,
    /// The caller waits this long for the far end's BYE and answers 200; the
    /// call fails if none comes.
    WaitBye { timeout_ms: u64 },
}

/// The script of one caller: INVITE `sip:SERVICE@target` from `FROM`,
/// offering PCMU and telephone-event/8000 on payload type 96, then the steps,
/// then the ending.
#[derive(Clone, Debug)]
pub struct CallerScript {
    /// User part of the request URI (and To), e.g. `100`.
    pub service: String,
    /// User part of From and Contact (the caller's number), e.g. `+393471234567`.
    pub from: String,
    /// How long to wait for the 200 to the INVITE, in milliseconds.
    pub answer_timeout_ms: u64,
    pub steps: Vec<Step>,
    pub ending: Ending,
    /// The 8 kHz mono μ-law WAV that [`Step::Audio`] streams; by default
    /// the repository's `deploy/prompts/moh/default.wav`.
    pub audio_wav: PathBuf,
}

impl CallerScript {
    /// Calls `service` as `from`, no steps, ending with BYE.
    pub fn new(service: &str, from: &str) -> Self {
        Self {
            service: service.to_owned(),
            from: from.to_owned(),
            answer_timeout_ms: 10_000,
            steps: Vec::new(),
            ending: Ending::Bye,
            audio_wav: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/prompts/moh/default.wav"),
        }
    }

    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    pub fn steps(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.steps.extend(steps);
        self
    }

    pub fn ending(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }
}

impl Default for CallerScript {
    fn default() -> Self {
        Self::new("100", "+393471234567")
    }
}

fn check_digits(digits: &str) {
    assert!(
        !digits.is_empty()
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')),
        "DTMF digits must be 0-9, *, #, A-D: {digits:?}"
    );
}

fn check_sip_user(what: &str, user: &str) {
    assert!(
        !user.is_empty()
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_.!~*'()&=$,;?/".contains(c)),
        "{what} must be a plain SIP user part: {user:?}"
    );
}

/// The payload of the `data` chunk of an 8 kHz mono μ-law WAV.
fn ulaw_samples(wav: &[u8], path: &Path) -> Vec<u8> {
    let bad =
        |why: &str| -> ! { panic!("{} is not an 8 kHz mono μ-law WAV: {why}", path.display()) };
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        bad("no RIFF/WAVE header");
    }
    let mut i = 12;
    let mut format_ok = false;
    while i + 8 <= wav.len() {
        let id = &wav[i..i + 4];
        let size = u32::from_le_bytes([wav[i + 4], wav[i + 5], wav[i + 6], wav[i + 7]]) as usize;
        let body = &wav[i + 8..(i + 8 + size).min(wav.len())];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    bad("short fmt chunk");
                }
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format_ok = tag == 7 && channels == 1 && rate == 8000;
                if !format_ok {
                    bad(&format!("format {tag}, {channels} channel(s), {rate} Hz"));
                }
            }
            b"data" => {
                if !format_ok {
                    bad("data before fmt");
                }
                if body.len() < 160 {
                    bad("less than 20 ms of audio");
                }
                return body.to_vec();
            }
            _ => {}
        }
        i += 8 + size + (size & 1);
    }
    bad("no data chunk")
}

/// A raw μ-law copy of `wav` for SIPp's `rtp_stream` (which sends a file's
/// bytes as they are), kept in the temp directory under a name derived from
/// the WAV's path and size.
fn raw_audio(wav: &Path) -> PathBuf {
    use std::hash::{Hash as _, Hasher as _};
    let bytes = std::fs::read(wav)
        .unwrap_or_else(|e| panic!("cannot read the caller's audio {}: {e}", wav.display()));
    let samples = ulaw_samples(&bytes, wav);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    wav.hash(&mut hasher);
    bytes.len().hash(&mut hasher);
    bytes.hash(&mut hasher);
    let path = std::env::temp_dir().join(format!("centralino-sipp-{:016x}.ulaw", hasher.finish()));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == samples.len() as u64) {
        return path;
    }
    let tmp = path.with_extension(crate::unique("tmp"));
    std::fs::write(&tmp, &samples).expect("raw audio file");
    std::fs::rename(&tmp, &path).expect("raw audio file in place");
    path
}

/// The SIPp UAC scenario of `opts`. Media: the SDP offers `[media_port]`
/// (SIPp's `-mp` socket, from which `rtp_stream` sends; `play_dtmf` sends
/// from the port the SDP names), PCMU (0) and telephone-event/8000 on 96.
pub fn sipp_caller_scenario(opts: &CallerScript) -> String {
    check_sip_user("the service", &opts.service);
    check_sip_user("the caller", &opts.from);
    let service = &opts.service;
    let from = &opts.from;
    let from_hdr =
        format!("From: <sip:{from}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]");
    let contact = format!("Contact: <sip:{from}@[local_ip]:[local_port]>");
    let mut x = String::new();
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="centralino caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:{service}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      {from_hdr}
      To: <sip:{service}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      {contact}
      Max-Forwards: 70
      User-Agent: centralino-test-caller (sipp)
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 96
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-16
      a=ptime:20
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true" timeout="{answer_timeout}"/>
  <recv response="180" optional="true" timeout="{answer_timeout}"/>
  <recv response="183" optional="true" timeout="{answer_timeout}"/>
  <recv response="200" rrs="true" timeout="{answer_timeout}"/>
"#,
        answer_timeout = opts.answer_timeout_ms
    );
    let in_dialog = |x: &mut String, method: &str, cseq: u32, body: Option<(&str, &str)>| {
        let (content, body) = match body {
            Some((kind, body)) => (
                format!("Content-Type: {kind}\n      Content-Length: [len]"),
                body.to_owned(),
            ),
            None => ("Content-Length: 0".to_owned(), String::new()),
        };
        let _ = write!(
            x,
            r#"  <send{retrans}>
    <![CDATA[
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      {from_hdr}
      To: <sip:{service}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq_method}
      {contact}
      Max-Forwards: 70
      {content}

{body}
    ]]>
  </send>
"#,
            retrans = if method == "ACK" {
                ""
            } else {
                r#" retrans="500""#
            },
            cseq_method = if method == "ACK" {
                "1 ACK".to_owned()
            } else {
                format!("{cseq} {method}")
            },
        );
    };
    in_dialog(&mut x, "ACK", 1, None);
    let mut cseq = 1;
    let mut audio = false;
    for step in &opts.steps {
        match step {
            Step::Pause(ms) => {
                let _ = writeln!(x, r#"  <pause milliseconds="{ms}"/>"#);
            }
            Step::Rfc4733(digits) => {
                check_digits(digits);
                if audio {
                    x.push_str("  <nop><action><exec rtp_stream=\"pause\"/></action></nop>\n");
                }
                let _ = writeln!(
                    x,
                    "  <nop><action><exec play_dtmf=\"{digits}\"/></action></nop>\n  <pause milliseconds=\"{}\"/>",
                    play_dtmf_duration_ms(digits.len())
                );
                if audio {
                    x.push_str("  <nop><action><exec rtp_stream=\"resume\"/></action></nop>\n");
                }
            }
            Step::Info(digit) => {
                check_digits(&digit.to_string());
                cseq += 1;
                let body = format!("      Signal={digit}\n      Duration=160\n");
                in_dialog(
                    &mut x,
                    "INFO",
                    cseq,
                    Some(("application/dtmf-relay", body.as_str())),
                );
                x.push_str("  <recv response=\"200\"/>\n");
            }
            Step::Audio => {
                if audio {
                    x.push_str("  <nop><action><exec rtp_stream=\"resume\"/></action></nop>\n");
                } else {
                    let raw = raw_audio(&opts.audio_wav);
                    let _ = writeln!(
                        x,
                        "  <nop><action><exec rtp_stream=\"{},-1,0\"/></action></nop>",
                        raw.display()
                    );
                    audio = true;
                }
            }
            Step::StopAudio => {
                if audio {
                    x.push_str("  <nop><action><exec rtp_stream=\"pause\"/></action></nop>\n");
                }
            }
        }
    }
    match opts.ending {
        Ending::Bye => {
            cseq += 1;
            in_dialog(&mut x, "BYE", cseq, None);
            x.push_str("  <recv response=\"200\"/>\n");
        }
        Ending::WaitBye { timeout_ms } => {
            let _ = write!(
                x,
                r#"  <recv request="BYE" timeout="{timeout_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      {contact}
      Content-Length: 0

    ]]>
  </send>
"#
            );
        }
    }
    x.push_str("</scenario>\n");
    x
}

/// What a SIPp run left behind.
#[derive(Clone, Debug, Default)]
pub struct SippOutcome {
    /// Exit status 0 and no failed call.
    pub success: bool,
    /// SIPp's exit code (`None`: killed at the deadline). 0: every call
    /// succeeded; 1: some failed; 97: stopped by an internal command; 99:
    /// no call processed; 255 (-1): fatal error; 254 (-2): cannot bind.
    pub exit_code: Option<i32>,
    /// Calls that reached the scenario's end (`SuccessfulCall(C)` of the
    /// statistics CSV).
    pub successful: u64,
    /// Calls that failed (`FailedCall(C)`).
    pub failed: u64,
    /// SIPp's screen (statistics, per-message counters), stdout.
    pub stdout: String,
    pub stderr: String,
    /// The `-trace_err` log: unexpected messages and the reasons calls failed.
    pub errors_log: String,
    /// The `-trace_msg` log: every SIP message sent and received.
    pub messages_log: String,
    /// The `-trace_stat` CSV.
    pub stats_csv: String,
}

impl SippOutcome {
    /// Fails the test with everything SIPp said unless the run succeeded.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.success, "SIPp failed:\n{self}");
    }
}

impl std::fmt::Display for SippOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |s: &str, n: usize| {
            let start = s.len().saturating_sub(n);
            let start = (start..=s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            s[start..].to_owned()
        };
        write!(
            f,
            "exit code {:?}, {} successful and {} failed call(s)\n--- errors log ---\n{}\n--- stderr ---\n{}\n--- screen (end) ---\n{}\n--- messages (end) ---\n{}",
            self.exit_code,
            self.successful,
            self.failed,
            tail(&self.errors_log, 6000),
            tail(&self.stderr, 3000),
            tail(&self.stdout, 4000),
            tail(&self.messages_log, 8000),
        )
    }
}

/// `(successful, failed)` from the last row of a SIPp `-trace_stat` CSV.
fn parse_stats_csv(csv: &str) -> Option<(u64, u64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let column = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

/// `(successful, failed)` from the last statistics screen SIPp printed:
/// `  Successful call        |        0                  |        1  `.
fn parse_stats_screen(screen: &str) -> Option<(u64, u64)> {
    let cumulative = |label: &str| -> Option<u64> {
        screen
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))?
            .split('|')
            .nth(2)?
            .trim()
            .parse()
            .ok()
    };
    Some((cumulative("Successful call")?, cumulative("Failed call")?))
}

/// A running SIPp (started by [`Sipp::spawn`]); killed if dropped before
/// [`Sipp::finish`].
pub struct Sipp {
    child: tokio::process::Child,
    dir: PathBuf,
    deadline: tokio::time::Instant,
}

impl Sipp {
    /// Starts `sipp -sf SCENARIO -m 1 -nostdin -timeout T -timeout_error
    /// -trace_err -trace_msg -trace_stat -i 127.0.0.1 -mi 127.0.0.1 -p
    /// <free UDP port> EXTRA.. TARGET` in a temporary directory. `extra`
    /// may set `-m total -l concurrent -r rate` (then no `-m 1`), `-t tn`, ...
    /// Needs a Tokio runtime.
    pub fn spawn(
        scenario_xml: &str,
        target: SocketAddr,
        extra: &[&str],
        timeout: Duration,
    ) -> Self {
        let sipp = program("sipp", SIPP_MISSING);
        let dir = temp_dir("sipp");
        let scenario = dir.join("scenario.xml");
        std::fs::write(&scenario, scenario_xml).expect("scenario file");
        // Free for UDP and TCP: a scenario may run over either (`-t t1`).
        let port = free_sip_port();
        let mut cmd = tokio::process::Command::new(sipp);
        cmd.current_dir(&dir)
            .arg("-sf")
            .arg(&scenario)
            .arg("-nostdin")
            .args(["-timeout", &format!("{}s", timeout.as_secs().max(1))])
            .arg("-timeout_error")
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.join("messages.log"))
            .arg("-trace_stat")
            .arg("-stf")
            .arg(dir.join("stats.csv"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string()]);
        if !extra.contains(&"-m") {
            cmd.args(["-m", "1"]);
        }
        cmd.args(extra)
            .arg(target.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("sipp stdout"))
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("sipp stderr"))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{SIPP_MISSING} ({e})"));
        Self {
            child,
            dir,
            deadline: tokio::time::Instant::now() + timeout + Duration::from_secs(10),
        }
    }

    /// Waits for SIPp to exit (killing it 10 s after its own `-timeout`)
    /// and collects its logs and statistics.
    pub async fn finish(mut self) -> SippOutcome {
        let status = tokio::time::timeout_at(self.deadline, self.child.wait()).await;
        let mut note = String::new();
        let exit_code = match status {
            Ok(Ok(status)) => status.code(),
            Ok(Err(e)) => {
                note = format!("\n(waiting for sipp failed: {e})");
                None
            }
            Err(_) => {
                let _ = self.child.kill().await;
                note = "\n(sipp did not exit by its -timeout: killed)".to_owned();
                None
            }
        };
        let stdout = read_lossy(&self.dir.join("stdout.log"));
        let stats_csv = read_lossy(&self.dir.join("stats.csv"));
        let (successful, failed) = parse_stats_csv(&stats_csv)
            .or_else(|| parse_stats_screen(&stdout))
            .unwrap_or((0, 0));
        SippOutcome {
            success: exit_code == Some(0) && failed == 0,
            exit_code,
            successful,
            failed,
            stdout,
            stderr: read_lossy(&self.dir.join("stderr.log")) + &note,
            errors_log: read_lossy(&self.dir.join("errors.log")),
            messages_log: read_lossy(&self.dir.join("messages.log")),
            stats_csv,
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a SIPp scenario against `target` to the end (see [`Sipp::spawn`]).
pub async fn run_sipp(
    scenario_xml: &str,
    target: SocketAddr,
    extra: &[&str],
    timeout: Duration,
) -> SippOutcome {
    Sipp::spawn(scenario_xml, target, extra, timeout)
        .finish()
        .await
}

/// SIPp's built-in UAS (`-sn uas`: answers INVITE with 180 and 200 with
/// SDP, expects ACK and BYE) on a free UDP port of 127.0.0.1, until dropped.
pub struct SippUas {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl SippUas {
    pub fn start() -> Self {
        let sipp = program("sipp", SIPP_MISSING);
        let dir = temp_dir("sipp-uas");
        for _ in 0..3 {
            let port = free_udp_port();
            let log = std::fs::File::create(dir.join("uas.log")).expect("uas log");
            let mut child = Command::new(&sipp)
                .current_dir(&dir)
                .args([
                    "-sn",
                    "uas",
                    "-nostdin",
                    "-i",
                    "127.0.0.1",
                    "-mi",
                    "127.0.0.1",
                ])
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{SIPP_MISSING} ({e})"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Bound by SIPp once we can no longer bind it ourselves.
                if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                    return Self {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = read_lossy(&dir.join("uas.log"));
        panic!("the SIPp UAS did not start; its output:\n{log}");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for SippUas {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// baresip
// ---------------------------------------------------------------------------

/// One event baresip sent over `ctrl_tcp`, e.g.
/// `{"event":true,"type":"CALL_ESTABLISHED","class":"call","accountaor":..,
/// "direction":"incoming","peeruri":..,"id":"<Call-ID>","param":..}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaresipEvent {
    /// `type`. A call answered by itself gives `CALL_REMOTE_SDP`,
    /// `CALL_LOCAL_SDP`, `CALL_ESTABLISHED` (no `CALL_INCOMING`!),
    /// `CALL_RTPESTAB` (param `audio`: first RTP in), `CALL_DTMF_START`
    /// (param: the digit, from RFC 4733 or INFO), `CALL_DTMF_END`,
    /// `CALL_CLOSED` (param: the reason; `Connection reset by peer` after a
    /// BYE). A phone that does not answer gives `CALL_INCOMING`, then
    /// `CALL_CLOSED` when the caller cancels.
    pub kind: String,
    pub param: String,
    pub peer_uri: String,
    /// The SIP Call-ID.
    pub call_id: String,
    /// The event's JSON as received.
    pub raw: String,
}

impl BaresipEvent {
    fn parse(raw: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(raw).ok()?;
        if v.get("event").and_then(serde_json::Value::as_bool) != Some(true) {
            return None;
        }
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Some(Self {
            kind: field("type"),
            param: field("param"),
            peer_uri: field("peeruri"),
            call_id: field("id"),
            raw: raw.to_owned(),
        })
    }
}

/// How a [`Baresip`] phone behaves.
#[derive(Clone, Debug)]
pub struct BaresipOptions {
    /// Answers calls by itself (`answermode=auto`); otherwise it rings
    /// (180) until the caller gives up (`answermode=manual`).
    pub answer: bool,
    /// Calls it takes at once (`call_max_calls`); beyond, it answers 486.
    pub max_calls: u32,
}

impl Default for BaresipOptions {
    fn default() -> Self {
        Self {
            answer: true,
            max_calls: 4,
        }
    }
}

/// baresip as an agent phone on 127.0.0.1: SIP on a free port (UDP, TCP,
/// and TLS on the next port), no registration, PCMU/PCMA, a 440 Hz sine as
/// its microphone, sound thrown away; driven over `ctrl_tcp`. Killed on drop.
pub struct Baresip {
    user: String,
    sip_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    ctrl: TcpStream,
    buf: Vec<u8>,
    events: VecDeque<BaresipEvent>,
    next_token: u64,
    /// `CALL_ESTABLISHED` events read so far (each such call prints an RTP
    /// summary when it ends).
    established: usize,
}

impl Baresip {
    /// A phone for `user` that answers every call by itself.
    pub async fn start(user: &str) -> Self {
        Self::start_with(user, BaresipOptions::default()).await
    }

    /// A phone for `user` that rings and never answers.
    pub async fn start_without_answer(user: &str) -> Self {
        Self::start_with(
            user,
            BaresipOptions {
                answer: false,
                ..BaresipOptions::default()
            },
        )
        .await
    }

    pub async fn start_with(user: &str, options: BaresipOptions) -> Self {
        check_sip_user("the baresip user", user);
        let baresip = program("baresip", BARESIP_MISSING);
        assert!(
            Path::new(BARESIP_MODULES).join("ctrl_tcp.so").exists(),
            "baresip's modules are missing from {BARESIP_MODULES}: {BARESIP_MISSING}"
        );
        let dir = temp_dir("baresip");
        let mut last_log = String::new();
        // A port picked free may be taken before baresip binds it: retry.
        for _ in 0..3 {
            let sip_port = free_sip_port();
            let ctrl_port = free_port();
            std::fs::write(
                dir.join("config"),
                baresip_config(sip_port, ctrl_port, &options),
            )
            .expect("baresip config");
            let answermode = if options.answer { "auto" } else { "manual" };
            std::fs::write(
                dir.join("accounts"),
                format!("<sip:{user}@127.0.0.1:{sip_port}>;regint=0;answermode={answermode}\n"),
            )
            .expect("baresip accounts");
            std::fs::write(dir.join("contacts"), "").expect("baresip contacts");
            let log_path = dir.join("baresip.log");
            let log = std::fs::File::create(&log_path).expect("baresip log");
            let mut child = Command::new(&baresip)
                .arg("-f")
                .arg(&dir)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{BARESIP_MISSING} ({e})"));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let mut exited = false;
            while tokio::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    exited = true;
                    break;
                }
                if read_lossy(&log_path).contains("baresip is ready.")
                    && let Ok(ctrl) = TcpStream::connect(("127.0.0.1", ctrl_port)).await
                {
                    return Self {
                        user: user.to_owned(),
                        sip_port,
                        dir,
                        child: Some(child),
                        ctrl,
                        buf: Vec::new(),
                        events: VecDeque::new(),
                        next_token: 0,
                        established: 0,
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = read_lossy(&log_path);
            if !exited {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "baresip did not start (ready, ctrl_tcp listening) within 15 s; its output:\n{last_log}"
        );
    }

    /// The phone's address: `sip:USER@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// Its SIP address, for SIPp's target.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// Everything baresip printed so far (its log, call summaries).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("baresip.log"))
    }

    /// The next netstring from `ctrl_tcp`, or `None` at `deadline`.
    async fn read_message(&mut self, deadline: tokio::time::Instant) -> Option<String> {
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or_else(|| {
                        panic!(
                            "baresip's ctrl_tcp sent a bad netstring: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        )
                    });
                if self.buf.len() > colon + len + 1 {
                    let message =
                        String::from_utf8_lossy(&self.buf[colon + 1..colon + 1 + len]).into_owned();
                    self.buf.drain(..colon + len + 2);
                    if message.contains("\"CALL_ESTABLISHED\"") {
                        self.established += 1;
                    }
                    return Some(message);
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.ctrl.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    panic!(
                        "baresip closed its ctrl_tcp connection (did it die?); its output:\n{}",
                        self.log()
                    )
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a `ctrl_tcp` command (`hangup`, `sndcode` with digits,
    /// `answermode` with `manual`, `listcalls`, `audio_debug`, ...) and
    /// returns the `data` of its response, the text the command prints.
    /// Events arriving meanwhile are kept for [`Baresip::next_event`].
    pub async fn command(&mut self, command: &str, params: &str) -> String {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let request =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        let frame = format!("{}:{request},", request.len());
        self.ctrl
            .write_all(frame.as_bytes())
            .await
            .expect("command to baresip's ctrl_tcp");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let Some(message) = self.read_message(deadline).await else {
                panic!("baresip did not answer {command:?} within 5 s");
            };
            if let Some(event) = BaresipEvent::parse(&message) {
                self.events.push_back(event);
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&message) else {
                continue;
            };
            if v.get("response").is_some()
                && v.get("token").and_then(serde_json::Value::as_str) == Some(token.as_str())
            {
                return v
                    .get("data")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
            }
        }
    }

    /// The next event, waiting up to `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<BaresipEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = self.read_message(deadline).await?;
            if let Some(event) = BaresipEvent::parse(&message) {
                return Some(event);
            }
        }
    }

    /// Skips events until one of type `kind` (`CALL_INCOMING`,
    /// `CALL_ESTABLISHED`, `CALL_CLOSED`, ...) and returns its JSON; an error
    /// listing the events seen if none comes within `timeout`.
    pub async fn wait_event(&mut self, kind: &str, timeout: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(event) if event.kind == kind => return Ok(event.raw),
                Some(event) => seen.push(event.kind),
                None => {
                    return Err(format!(
                        "baresip {}: no {kind} event within {timeout:?}; events seen: {seen:?}",
                        self.uri()
                    ));
                }
            }
        }
    }

    /// Hangs up the current call (`hangup`).
    pub async fn hangup(&mut self) {
        self.command("hangup", "").await;
    }

    /// RTP packets `(received, sent)` in the current call, from
    /// `audio_debug` (its RTCP session: `rcvd=` summed over the sources,
    /// `TX: packets=`). With no call up, those of the last call that ended,
    /// from the summary baresip prints on stdout when a call's audio stream
    /// goes (`rtp_stats yes`: `packets: <sent> <received>`), waiting up to
    /// 2 s for the summary of every call established so far. `None` if
    /// there is neither (e.g. the phone never answered).
    pub async fn rtp_stats(&mut self) -> Option<(u64, u64)> {
        let debug = self.command("audio_debug", "").await;
        if let Some(stats) = parse_audio_debug(&debug) {
            return Some(stats);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let summaries = call_summaries(&self.log());
            if summaries.len() >= self.established || Instant::now() > deadline {
                return summaries.last().copied();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn baresip_config(sip_port: u16, ctrl_port: u16, options: &BaresipOptions) -> String {
    format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{sip_port}\n\
         net_interface\t\t127.0.0.1\n\
         call_local_timeout\t120\n\
         call_max_calls\t\t{max_calls}\n\
         audio_path\t\t/usr/share/baresip\n\
         audio_player\t\taubridge,sink\n\
         audio_alert\t\taubridge,alert\n\
         audio_source\t\tausine,440\n\
         ausrc_srate\t\t48000\n\
         auplay_srate\t\t48000\n\
         ausrc_channels\t\t2\n\
         auplay_channels\t\t2\n\
         audio_buffer\t\t20-160\n\
         rtp_stats\t\tyes\n\
         rtcp_mux\t\tno\n\
         jitter_buffer_delay\t5-10\n\
         module_path\t\t{BARESIP_MODULES}\n\
         module\t\t\tg711.so\n\
         module\t\t\tausine.so\n\
         module\t\t\taubridge.so\n\
         module_tmp\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         module_app\t\tctrl_tcp.so\n\
         statmode_default\toff\n\
         ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
        max_calls = options.max_calls,
    )
}

/// `(received, sent)` from `audio_debug` during a call.
fn parse_audio_debug(debug: &str) -> Option<(u64, u64)> {
    let number_after = |s: &str, key: &str| -> Option<u64> {
        let rest = &s[s.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let sent = number_after(debug, "TX: packets=")?;
    let received = debug
        .match_indices("rcvd=")
        .filter_map(|(i, _)| number_after(&debug[i..], "rcvd="))
        .sum();
    Some((received, sent))
}

/// `(received, sent)` of every `packets: <sent> <received>` line of the
/// summaries baresip prints when a call's audio stream ends, in order.
fn call_summaries(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .map(|l| l.trim_start_matches(['\r', '\0']))
        .filter_map(|l| l.strip_prefix("packets:"))
        .filter_map(|numbers| {
            let mut numbers = numbers.split_whitespace().map(str::parse::<u64>);
            let sent = numbers.next()?.ok()?;
            let received = numbers.next()?.ok()?;
            Some((received, sent))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_numbers_requests_and_waits_for_dtmf() {
        let xml = sipp_caller_scenario(
            &CallerScript::new("100", "+393471234567")
                .steps([
                    Step::Audio,
                    Step::Info('5'),
                    Step::Rfc4733("42*".into()),
                    Step::Info('#'),
                ])
                .ending(Ending::Bye),
        );
        assert!(xml.contains("INVITE sip:100@[remote_ip]:[remote_port] SIP/2.0"));
        assert!(xml.contains("From: <sip:+393471234567@[local_ip]:[local_port]>"));
        assert!(xml.contains("CSeq: 2 INFO") && xml.contains("CSeq: 3 INFO"));
        assert!(xml.contains("CSeq: 4 BYE"));
        assert!(xml.contains(r#"play_dtmf="42*""#));
        assert!(xml.contains(r#"<pause milliseconds="2100"/>"#));
        assert!(xml.contains("Signal=#"));
        assert!(xml.contains(",-1,0\"/>"));
    }

    #[test]
    fn wav_data_chunk_is_cut_out() {
        let wav =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prompts/moh/default.wav");
        let raw = raw_audio(&wav);
        let len = std::fs::metadata(&raw).expect("raw audio").len();
        assert_eq!(len, 128_000, "16 s of 8 kHz μ-law");
    }

    #[test]
    fn statistics_are_parsed() {
        let csv = "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C)\n\
                   a;0;0;0;0\n\
                   b;3;7;1;2\n";
        assert_eq!(parse_stats_csv(csv), Some((7, 2)));
        let screen = "  Successful call        |        0                  |        1                 \n  \
                      Failed call            |        0                  |        3                 \n";
        assert_eq!(parse_stats_screen(screen), Some((1, 3)));
        let summary =
            "\naudio           Transmit:     Receive:\npackets:            141          186\n";
        assert_eq!(call_summaries(summary), vec![(186, 141)]);
        let debug = " TX: packets=86, octets=13760\n  member 0xca110000: lost=0\n  IP=127.0.0.1:6004 psent=0 rcvd=85\n  member 0x01020305:\n   psent=0 rcvd=20\n";
        assert_eq!(parse_audio_debug(debug), Some((105, 86)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn caller_talks_to_an_answering_phone() {
        let started = Instant::now();
        let mut phone = Baresip::start("agent").await;
        eprintln!("baresip started in {:?}", started.elapsed());
        let script = CallerScript::new("agent", "+393471234567").steps([
            Step::Audio,
            Step::Pause(500),
            Step::Rfc4733("12".into()),
            Step::Info('9'),
            Step::Pause(500),
        ]);
        let started = Instant::now();
        let outcome = run_sipp(
            &sipp_caller_scenario(&script),
            phone.addr(),
            &[],
            Duration::from_secs(20),
        )
        .await;
        eprintln!("sipp ran in {:?}", started.elapsed());
        outcome.assert_success();
        assert_eq!((outcome.successful, outcome.failed), (1, 0));
        assert!(outcome.messages_log.contains("Signal=9"), "{outcome}");
        phone
            .wait_event("CALL_ESTABLISHED", Duration::from_secs(5))
            .await
            .expect("established");
        let mut digits = String::new();
        loop {
            let event = phone
                .next_event(Duration::from_secs(5))
                .await
                .expect("events up to CALL_CLOSED");
            match event.kind.as_str() {
                "CALL_DTMF_START" => digits.push_str(&event.param),
                "CALL_CLOSED" => break,
                _ => {}
            }
        }
        assert_eq!(
            digits, "129",
            "RFC 4733 digits and the INFO digit, in order"
        );
        let (received, sent) = phone.rtp_stats().await.expect("RTP statistics");
        eprintln!("baresip: {received} RTP packets received, {sent} sent");
        // About 2.3 s of call at 50 packets a second.
        assert!(
            received > 60 && sent > 60,
            "{received} {sent}\n{}",
            phone.log()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn caller_waits_for_the_phone_to_hang_up() {
        let mut phone = Baresip::start("agent").await;
        let script = CallerScript::new("agent", "+390212345678")
            .step(Step::Audio)
            .ending(Ending::WaitBye { timeout_ms: 10_000 });
        let sipp = Sipp::spawn(
            &sipp_caller_scenario(&script),
            phone.addr(),
            &[],
            Duration::from_secs(20),
        );
        phone
            .wait_event("CALL_ESTABLISHED", Duration::from_secs(5))
            .await
            .expect("established");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (received, sent) = phone.rtp_stats().await.expect("stats during the call");
        assert!(received > 5 && sent > 5, "{received} {sent}");
        phone.hangup().await;
        let outcome = sipp.finish().await;
        outcome.assert_success();
        assert!(outcome.messages_log.contains("BYE sip:"), "{outcome}");
        phone
            .wait_event("CALL_CLOSED", Duration::from_secs(5))
            .await
            .expect("closed");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn waiting_for_a_bye_that_never_comes_fails() {
        let phone = Baresip::start("agent").await;
        let script = CallerScript::new("agent", "+390212345678")
            .ending(Ending::WaitBye { timeout_ms: 1_000 });
        let outcome = run_sipp(
            &sipp_caller_scenario(&script),
            phone.addr(),
            &[],
            Duration::from_secs(20),
        )
        .await;
        assert!(!outcome.success, "{outcome}");
        assert_eq!(outcome.failed, 1, "{outcome}");
        drop(phone);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_phone_that_does_not_answer_rings() {
        let mut phone = Baresip::start_without_answer("agent").await;
        let mut script = CallerScript::new("agent", "+390212345678");
        script.answer_timeout_ms = 1_500;
        let outcome = run_sipp(
            &sipp_caller_scenario(&script),
            phone.addr(),
            &[],
            Duration::from_secs(20),
        )
        .await;
        assert!(!outcome.success, "{outcome}");
        assert_eq!(outcome.failed, 1, "{outcome}");
        assert!(outcome.messages_log.contains("180 Ringing"), "{outcome}");
        phone
            .wait_event("CALL_INCOMING", Duration::from_secs(5))
            .await
            .expect("incoming");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn many_calls_are_counted() {
        let uas = SippUas::start();
        let script = CallerScript::new("100", "+390212345678").step(Step::Pause(300));
        let outcome = run_sipp(
            &sipp_caller_scenario(&script),
            uas.addr(),
            &["-m", "20", "-l", "10", "-r", "20"],
            Duration::from_secs(20),
        )
        .await;
        outcome.assert_success();
        assert_eq!((outcome.successful, outcome.failed), (20, 0), "{outcome}");
    }
}
