use super::*;
use proptest::prelude::*;

const SIPP: &str = "v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-16
";

const BARESIP: &str = "v=0\r
o=- 3981460471 2587316384 IN IP4 192.168.1.20\r
s=-\r
c=IN IP4 192.168.1.20\r
t=0 0\r
m=audio 10310 RTP/AVP 96 9 0 8 101\r
b=AS:125\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=rtcp-rsize\r
a=sendrecv\r
a=label:1\r
a=ssrc:1209358432 cname:a4b1f2c9\r
";

const BOTH: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

fn local() -> SocketAddr {
    "10.0.0.5:40000".parse().expect("address")
}

#[test]
fn parses_sipps_offer() {
    let sdp = parse(SIPP).expect("sipp offer");
    assert_eq!(sdp.origin_session_id, "53655765");
    assert_eq!(sdp.origin_version, 2353687637);
    assert_eq!(sdp.connection, Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(sdp.direction, Direction::SendRecv);
    assert_eq!(
        sdp.media,
        [Media {
            kind: "audio".into(),
            port: 6000,
            proto: "RTP/AVP".into(),
            formats: vec![0, 96],
            connection: None,
            rtpmap: vec![
                (0, "PCMU".into(), 8000),
                (96, "telephone-event".into(), 8000)
            ],
            fmtp: vec![(96, "0-16".into())],
            ptime: None,
            direction: None,
        }]
    );
    assert_eq!(
        negotiate(&sdp, &BOTH),
        Ok(Negotiated {
            remote: "127.0.0.1:6000".parse().expect("address"),
            codec: Codec::Pcmu,
            telephone_event: Some(96),
            ptime: 20,
            direction: Direction::SendRecv,
        })
    );
    // We prefer A-law, sipp has only μ-law.
    let neg = negotiate(&sdp, &[Codec::Pcma, Codec::Pcmu]).expect("pcmu");
    assert_eq!(neg.codec, Codec::Pcmu);
}

#[test]
fn negotiates_baresips_offer() {
    let sdp = parse(BARESIP).expect("baresip offer");
    assert_eq!(sdp.media[0].formats, [96, 9, 0, 8, 101]);
    assert_eq!(sdp.media[0].direction, Some(Direction::SendRecv));
    assert_eq!(sdp.media[0].fmtp[0], (96, "stereo=1;sprop-stereo=1".into()));
    let neg = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!(neg.telephone_event, Some(101));
    assert_eq!(neg.remote, "192.168.1.20:10310".parse().expect("address"));
    let neg = negotiate(&sdp, &[Codec::Pcma, Codec::Pcmu]).expect("negotiated");
    assert_eq!(neg.codec, Codec::Pcma);
}

#[test]
fn telephone_event_at_8000_hz_on_any_payload_type() {
    let sdp = parse(
        "v=0\nc=IN IP4 192.0.2.7\nm=audio 7078 RTP/AVP 8 110 120\n\
         a=rtpmap:110 telephone-event/48000\na=rtpmap:120 Telephone-Event/8000\n\
         a=ptime:30\na=sendonly\n",
    )
    .expect("offer");
    let neg = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!(
        (neg.codec, neg.telephone_event, neg.ptime, neg.direction),
        (Codec::Pcma, Some(120), 30, Direction::SendOnly)
    );
    // Without an rtpmap line, a static type stands for its codec.
    let no_rtpmap = parse("v=0\nc=IN IP4 192.0.2.7\nm=audio 7078 RTP/AVP 8\n").expect("offer");
    let neg = negotiate(&no_rtpmap, &BOTH).expect("negotiated");
    assert_eq!((neg.codec, neg.telephone_event), (Codec::Pcma, None));
    // Names by rtpmap, in any case; rates other than 8000 do not match.
    let dynamic = parse(
        "v=0\nc=IN IP4 192.0.2.7\nm=audio 7078 RTP/AVP 97 98\n\
         a=rtpmap:97 PCMU/16000\na=rtpmap:98 pcma/8000\n",
    )
    .expect("offer");
    assert_eq!(negotiate(&dynamic, &BOTH).map(|n| n.codec), Ok(Codec::Pcma));
    // telephone-event on the static type we answer the codec with is dropped.
    let clash = parse(
        "v=0\nc=IN IP4 192.0.2.7\nm=audio 7078 RTP/AVP 97 0\n\
         a=rtpmap:97 PCMU/8000\na=rtpmap:0 telephone-event/8000\n",
    )
    .expect("offer");
    let neg = negotiate(&clash, &BOTH).expect("negotiated");
    assert_eq!((neg.codec, neg.telephone_event), (Codec::Pcmu, None));
}

#[test]
fn answer_and_offer_round_trip() {
    for text in [SIPP, BARESIP] {
        let neg = negotiate(&parse(text).expect("offer"), &BOTH).expect("negotiated");
        let ours = answer(&neg, local(), 42, 1);
        assert!(ours.ends_with("\r\n") && !ours.replace("\r\n", "").contains('\n'));
        let back = negotiate(&parse(&ours).expect("our answer"), &BOTH).expect("ours");
        assert_eq!(
            back,
            Negotiated {
                remote: local(),
                direction: Direction::SendRecv,
                ..neg
            }
        );
    }
    let neg = negotiate(&parse(SIPP).expect("offer"), &BOTH).expect("negotiated");
    assert_eq!(
        answer(&neg, local(), 42, 1),
        "v=0\r\no=- 42 1 IN IP4 10.0.0.5\r\ns=centralino\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );

    let ours = offer(local(), 7, 2, 101);
    let sdp = parse(&ours).expect("our offer");
    assert_eq!(
        (sdp.origin_session_id.as_str(), sdp.origin_version),
        ("7", 2)
    );
    assert_eq!(sdp.media[0].formats, [0, 8, 101]);
    assert_eq!(sdp.media[0].fmtp, [(101, "0-16".to_owned())]);
    let neg = negotiate(&sdp, &[Codec::Pcma]).expect("negotiated");
    assert_eq!(
        neg,
        Negotiated {
            remote: local(),
            codec: Codec::Pcma,
            telephone_event: Some(101),
            ptime: 20,
            direction: Direction::SendRecv,
        }
    );
}

#[test]
fn hold_is_kept_and_answered() {
    let sdp = parse(
        &SIPP
            .replace("127.0.0.1\nt=", "0.0.0.0\nt=")
            .replace("0-16\n", "0-16\na=sendonly\n"),
    )
    .expect("hold offer");
    let neg = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!(neg.remote, "0.0.0.0:6000".parse().expect("address"));
    assert_eq!(neg.direction, Direction::SendOnly);
    let ours = answer(&neg, local(), 1, 2);
    assert!(ours.contains("\r\na=recvonly\r\n"), "{ours}");
    let back = negotiate(&parse(&ours).expect("answer"), &BOTH).expect("negotiated");
    assert_eq!(back.direction, Direction::RecvOnly);

    // Session-level direction, overridden at media level.
    let sdp = parse("v=0\na=inactive\nc=IN IP4 192.0.2.1\nm=audio 1 RTP/AVP 0\n").expect("sdp");
    assert_eq!(
        negotiate(&sdp, &BOTH).map(|n| n.direction),
        Ok(Direction::Inactive)
    );
    let sdp = parse("v=0\na=inactive\nc=IN IP4 192.0.2.1\nm=audio 1 RTP/AVP 0\na=recvonly\n")
        .expect("sdp");
    assert_eq!(
        negotiate(&sdp, &BOTH).map(|n| n.direction),
        Ok(Direction::RecvOnly)
    );
    assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
}

#[test]
fn ipv6_and_connection_forms() {
    let sdp = parse(
        "v=0\no=- 1 1 IN IP6 2001:db8::1\nc=IN IP6 2001:db8::1\n\
         m=video 5000 RTP/AVP 31\nc=IN IP4 224.2.1.1/127/3\n\
         m=audio 5002/2 RTP/AVP 0\nc=IN IP6 2001:db8::2\n",
    )
    .expect("sdp");
    assert_eq!(sdp.media[0].connection, Some(IpAddr::from([224, 2, 1, 1])));
    let neg = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!(neg.remote, "[2001:db8::2]:5002".parse().expect("address"));

    let v6: SocketAddr = "[2001:db8::5]:4000".parse().expect("address");
    let ours = answer(&neg, v6, 9, 9);
    assert!(
        ours.contains("\r\no=- 9 9 IN IP6 2001:db8::5\r\n"),
        "{ours}"
    );
    assert!(ours.contains("\r\nc=IN IP6 2001:db8::5\r\n"), "{ours}");
    let back = negotiate(&parse(&ours).expect("answer"), &BOTH).expect("negotiated");
    assert_eq!(back.remote, v6);
    let back = negotiate(&parse(&offer(v6, 1, 1, 101)).expect("offer"), &BOTH).expect("ok");
    assert_eq!(back.remote, v6);
}

#[test]
fn answer_to_rejects_other_streams() {
    let text = "v=0\nc=IN IP4 192.0.2.1\nm=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\n\
                m=audio 5002 RTP/AVPF 0 8 101\na=rtpmap:101 telephone-event/8000\n\
                m=image 6000 udptl t38\n";
    let offer_sdp = parse(text).expect("offer");
    assert_eq!(offer_sdp.media[2].formats, Vec::<u8>::new());
    let neg = negotiate(&offer_sdp, &[Codec::Pcma]).expect("negotiated");
    let ours = answer_to(&offer_sdp, &neg, local(), 3, 4);
    let sdp = parse(&ours).expect("answer");
    let sections: Vec<(&str, u16, &str)> = sdp
        .media
        .iter()
        .map(|m| (m.kind.as_str(), m.port, m.proto.as_str()))
        .collect();
    assert_eq!(
        sections,
        [
            ("video", 0, "RTP/AVP"),
            ("audio", 40000, "RTP/AVPF"),
            ("image", 0, "udptl")
        ]
    );
    assert!(
        ours.contains("\r\nm=audio 40000 RTP/AVPF 8 101\r\n"),
        "{ours}"
    );
    let back = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!((back.codec, back.telephone_event), (Codec::Pcma, Some(101)));
    // A lone audio stream answers exactly as `answer` does, but for the proto.
    let sipp = parse(SIPP).expect("offer");
    let neg = negotiate(&sipp, &BOTH).expect("negotiated");
    assert_eq!(
        answer_to(&sipp, &neg, local(), 1, 1),
        answer(&neg, local(), 1, 1)
    );
}

#[test]
fn refuses_what_we_cannot_use() {
    let err = |text: &str| parse(text).and_then(|s| negotiate(&s, &BOTH)).unwrap_err();
    assert_eq!(err(""), SdpError::MissingVersion);
    assert_eq!(
        err("o=- 1 1 IN IP4 1.2.3.4\nv=0\n"),
        SdpError::MissingVersion
    );
    assert_eq!(err("v=1\n"), SdpError::MissingVersion);
    assert_eq!(
        err("v=0\nc=IN IP4 1.2.3.4\nm=video 5000 RTP/AVP 31\n"),
        SdpError::NoAudio
    );
    assert_eq!(
        err("v=0\nc=IN IP4 1.2.3.4\nm=audio 0 RTP/AVP 0\n"),
        SdpError::NoAudio
    );
    assert_eq!(
        err("v=0\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/SAVP 0\n").to_string(),
        "SRTP not supported (audio stream offered as RTP/SAVP)"
    );
    // An SRTP stream with a plain one after it: the plain one is used.
    let both = "v=0\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/SAVP 0\nm=audio 5002 RTP/AVP 0\n";
    let neg = negotiate(&parse(both).expect("sdp"), &BOTH).expect("negotiated");
    assert_eq!(neg.remote.port(), 5002);
    assert_eq!(
        err(&BARESIP.replace(" 9 0 8 101", " 9 101")).to_string(),
        "no common codec (offered: opus/48000, G722/8000, telephone-event/8000)"
    );
    assert_eq!(err("v=0\nm=audio 5000 RTP/AVP 0\n"), SdpError::NoConnection);
    assert_eq!(
        err("v=0\r\ns=-\r\nm=audio x RTP/AVP 0\r\n").to_string(),
        "sdp line 3: bad m= line \"audio x RTP/AVP 0\""
    );
    assert_eq!(
        err("v=0\ns=-\nt=0 0\nc=IN IP4 example.com\n").to_string(),
        "sdp line 4: bad c= line \"IN IP4 example.com\""
    );
    assert!(matches!(
        err("v=0\no=- 1 x IN IP4 1.2.3.4\n"),
        SdpError::BadLine { line: 2, .. }
    ));
    assert!(matches!(
        err("v=0\nm=audio 1 RTP/AVP 0\na=rtpmap:0 PCMU\n"),
        SdpError::BadLine { line: 3, .. }
    ));
}

#[test]
fn unknown_lines_attributes_and_bad_ptime_are_ignored() {
    let sdp = parse(
        "\nv=0\nx-nonsense\nz=whatever\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.9\n\
         a=x-custom:1\na=ptime:0\n",
    )
    .expect("sdp");
    let neg = negotiate(&sdp, &BOTH).expect("negotiated");
    assert_eq!((neg.ptime, neg.remote.port()), (20, 4000));
}

/// SDP-looking text: sections of random streams with random attributes, and
/// a few random lines anywhere.
fn sdp_text() -> impl Strategy<Value = String> {
    let re = |r: &str| proptest::string::string_regex(r).expect("regex");
    let pt_re = "(0|8|9|96|101|1?[0-9]{1,2})";
    let connection = prop_oneof![
        4 => re(r"c=IN IP4 (192\.0\.2\.1|0\.0\.0\.0|[0-9]{1,2}(\.[0-9]{1,2}){3})(/[0-9]{1,3})?"),
        1 => re("c=IN IP6 (::1|2001:db8::[0-9a-f]{1,4})"),
        1 => re("c=(IN|NET) IP[46] [0-9a-f.:]{1,7}"),
    ];
    let pt = || {
        prop_oneof![
            4 => proptest::sample::select(vec![0u8, 8, 9, 96, 101]),
            1 => any::<u8>(),
        ]
    };
    let rtpmap = (
        pt(),
        proptest::sample::select(vec!["PCMU", "pcma", "telephone-event", "opus", "G722"]),
        prop_oneof![3 => Just(8000u32), 1 => any::<u32>()],
    )
        .prop_map(|(pt, name, rate)| format!("a=rtpmap:{pt} {name}/{rate}"));
    let attribute = prop_oneof![
        4 => rtpmap,
        2 => re(&format!("a=(sendrecv|sendonly|recvonly|inactive|ptime:[0-9]{{1,3}}|fmtp:{pt_re} [ -~]{{0,10}})")),
    ];
    let m_line = (
        prop_oneof![3 => Just("audio"), 1 => Just("video"), 1 => Just("image")],
        prop_oneof![1 => Just(0u16), 5 => any::<u16>()],
        any::<bool>(),
        prop_oneof![4 => Just("RTP/AVP"), 1 => Just("RTP/AVPF"), 1 => Just("RTP/SAVP"), 1 => Just("udptl")],
        proptest::collection::vec(
            prop_oneof![
                5 => pt().prop_map(|p| p.to_string()),
                1 => Just("t38".to_owned()),
            ],
            0..5,
        ),
    )
        .prop_map(|(kind, port, pair, proto, formats)| {
            let pair = if pair { "/2" } else { "" };
            format!("m={kind} {port}{pair} {proto} {}", formats.join(" "))
        });
    let section = (
        m_line,
        proptest::option::of(connection.clone()),
        proptest::collection::vec(attribute, 0..6),
    )
        .prop_map(|(m, c, attributes)| {
            std::iter::once(m)
                .chain(c)
                .chain(attributes)
                .collect::<Vec<_>>()
        });
    let noise = prop_oneof![re("[a-z]=[ -~]{0,30}"), re("\\PC{0,30}")];
    (
        proptest::bool::weighted(0.95),
        proptest::option::of(connection),
        proptest::option::of(re("a=(sendrecv|sendonly|recvonly|inactive)")),
        proptest::collection::vec(section, 0..4),
        proptest::collection::vec((any::<proptest::sample::Index>(), noise), 0..2),
        "(\r?\n)",
    )
        .prop_map(|(version, c, direction, sections, noise, eol)| {
            let mut lines: Vec<String> = ["s=-".to_owned(), "t=0 0".to_owned()]
                .into_iter()
                .chain(c)
                .chain(direction)
                .chain(sections.into_iter().flatten())
                .collect();
            for (at, line) in noise {
                lines.insert(at.index(lines.len() + 1), line);
            }
            if version {
                lines.insert(0, "v=0".to_owned());
            }
            lines.join(&eol)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parse_and_negotiate_never_panic(text in sdp_text(), raw in "\\PC{0,100}") {
        let _ = parse(&raw).map(|s| negotiate(&s, &BOTH));
        let Ok(sdp) = parse(&text) else { return Ok(()) };
        let Ok(neg) = negotiate(&sdp, &BOTH) else { return Ok(()) };
        // Whatever we accepted, our answer negotiates back to the same terms.
        for ours in [answer(&neg, local(), 1, 1), answer_to(&sdp, &neg, local(), 1, 1)] {
            let back = parse(&ours).and_then(|s| negotiate(&s, &[neg.codec]));
            prop_assert_eq!(back, Ok(Negotiated {
                remote: local(),
                ptime: 20,
                direction: neg.direction.reversed(),
                ..neg.clone()
            }));
        }
    }
}
