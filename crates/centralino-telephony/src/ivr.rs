//! IVR flows: menus of prompts and keypad options, driven by the caller's
//! keys and a clock (milliseconds, supplied by the caller). No IO: the adapter
//! plays what [`Effect::Play`] names and feeds keys, the end of each prompt
//! and the time back in.
//!
//! A menu plays its prompt; a key interrupts the prompt (barge-in). After the
//! prompt the caller has `timeout_ms` to press a key. A key the menu does not
//! list, or silence, plays the menu's error prompt and the menu again, up to
//! `retries` times; then the menu's `default` action is taken, so every call
//! ends up somewhere.

use std::collections::BTreeMap;

/// What choosing an option does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Go to another menu of the flow.
    Menu(String),
    /// Leave the IVR for a queue.
    Queue { queue: String, priority: u32 },
    /// Play the current menu again.
    Repeat,
    /// Say goodbye and hang up.
    Hangup,
}

/// Why a text is not an [`Action`]. Each message quotes what was written
/// (the configuration puts the key in front).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseActionError {
    /// `queue:` with nothing before the priority.
    #[error("{text:?} has no queue name")]
    NoQueue { text: String },
    /// `queue:NAME:PRIORITY` whose priority is not a whole number 0–100.
    /// `queue` is the name written before it, for a caller that checks names
    /// (routing's rules) before priorities.
    #[error("{text:?}: the priority must be 0–100")]
    BadPriority { text: String, queue: String },
    /// `menu:` with no menu name.
    #[error("{text:?} has no menu name")]
    NoMenu { text: String },
    /// None of the forms.
    #[error(
        "{text:?} is not an action (queue:NAME, queue:NAME:PRIORITY, menu:NAME, repeat or hangup)"
    )]
    Unknown { text: String },
}

/// The action grammar of IVR configurations: `queue:NAME` (priority 0),
/// `queue:NAME:PRIORITY` (0–100), `menu:NAME`, `repeat` or `hangup`, with
/// spaces around the whole ignored. The queue name is everything between the
/// first and the second `:`; whether routing accepts it, and whether a menu
/// exists, is for the caller (and [`Flow::validate`]) to check.
impl std::str::FromStr for Action {
    type Err = ParseActionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("queue:") {
            let (queue, priority) = match rest.split_once(':') {
                Some((q, p)) => (q, Some(p)),
                None => (rest, None),
            };
            if queue.is_empty() {
                return Err(ParseActionError::NoQueue { text: text.into() });
            }
            let priority = match priority {
                None => 0,
                Some(p) => p.parse::<u32>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                    ParseActionError::BadPriority {
                        text: text.into(),
                        queue: queue.into(),
                    }
                })?,
            };
            return Ok(Action::Queue {
                queue: queue.to_owned(),
                priority,
            });
        }
        if let Some(menu) = t.strip_prefix("menu:") {
            return if menu.is_empty() {
                Err(ParseActionError::NoMenu { text: text.into() })
            } else {
                Ok(Action::Menu(menu.to_owned()))
            };
        }
        match t {
            "repeat" => Ok(Action::Repeat),
            "hangup" => Ok(Action::Hangup),
            _ => Err(ParseActionError::Unknown { text: text.into() }),
        }
    }
}

/// One menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    /// Prompt names, played in order.
    pub prompt: Vec<String>,
    /// Keys (`0`–`9`, `*`, `#`, `A`–`D`) and what they do.
    pub options: BTreeMap<char, Action>,
    /// How long the caller has after the prompt ends.
    pub timeout_ms: u64,
    /// How many times the menu is played again after a wrong key or silence
    /// before `default` is taken.
    pub retries: u32,
    /// Played before the menu again after a key it does not list.
    pub invalid_prompt: Vec<String>,
    /// Played before the menu again after silence.
    pub no_input_prompt: Vec<String>,
    /// Taken when the retries are used up.
    pub default: Action,
}

/// A tree (or graph) of menus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The first menu.
    pub start: String,
    pub menus: BTreeMap<String, Menu>,
    /// Played before [`Action::Hangup`] hangs up.
    pub goodbye: Vec<String>,
}

/// What the adapter does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Stop whatever is playing and play these prompts.
    Play(Vec<String>),
    /// The caller chose a queue: stop the IVR. `keys` are every key pressed,
    /// `path` the menu choices in order (`menu:key`, `menu:timeout`,
    /// `menu:invalid`, `menu:default`).
    Queue {
        queue: String,
        priority: u32,
        keys: String,
        path: Vec<String>,
    },
    /// Play these prompts, then hang up.
    Hangup {
        prompt: Vec<String>,
        path: Vec<String>,
    },
}

impl Flow {
    /// Checks that every menu named exists, keys are keypad keys, priorities
    /// are 0–100 and queues are named. The error names the menu and option.
    pub fn validate(&self) -> Result<(), String> {
        if !self.menus.contains_key(&self.start) {
            return Err(format!("start menu `{}` is not defined", self.start));
        }
        for (name, menu) in &self.menus {
            if menu.prompt.is_empty() {
                return Err(format!("menu `{name}`: prompt is empty"));
            }
            if menu.timeout_ms == 0 || menu.timeout_ms > 120_000 {
                return Err(format!("menu `{name}`: timeout must be 1 ms to 120 s"));
            }
            if menu.retries > 10 {
                return Err(format!("menu `{name}`: retries must be at most 10"));
            }
            for (key, action) in &menu.options {
                if crate::dtmf::event_of(*key).is_none() {
                    return Err(format!("menu `{name}`: `{key}` is not a keypad key"));
                }
                self.check_action(action)
                    .map_err(|e| format!("menu `{name}`, key {key}: {e}"))?;
            }
            if menu.default == Action::Repeat {
                return Err(format!(
                    "menu `{name}`: default cannot be repeat (the caller would never leave)"
                ));
            }
            self.check_action(&menu.default)
                .map_err(|e| format!("menu `{name}`, default: {e}"))?;
        }
        Ok(())
    }

    fn check_action(&self, action: &Action) -> Result<(), String> {
        match action {
            Action::Menu(m) if !self.menus.contains_key(m) => {
                Err(format!("menu `{m}` is not defined"))
            }
            Action::Queue { queue, .. } if queue.is_empty() => Err("queue is empty".into()),
            Action::Queue { priority, .. } if *priority > 100 => {
                Err("priority must be 0–100".into())
            }
            _ => Ok(()),
        }
    }

    /// Every prompt name the flow can play (to check the files exist).
    pub fn prompt_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .menus
            .values()
            .flat_map(|m| {
                m.prompt
                    .iter()
                    .chain(&m.invalid_prompt)
                    .chain(&m.no_input_prompt)
            })
            .chain(&self.goodbye)
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A prompt is playing; keys are taken (barge-in).
    Prompting,
    /// The prompt ended; waiting for a key until the deadline.
    Waiting { until: u64 },
    /// The caller left the IVR.
    Done,
}

/// One caller's way through a flow.
#[derive(Clone, Debug)]
pub struct Session {
    menu: String,
    failures: u32,
    keys: String,
    path: Vec<String>,
    state: State,
}

/// Keys kept for the interaction (a caller pressing keys at random).
const MAX_KEYS: usize = 32;
/// Path entries kept.
const MAX_PATH: usize = 64;

impl Session {
    /// Starts at the flow's first menu (validated flows only: an unknown
    /// start menu hangs up at once).
    pub fn start(flow: &Flow) -> (Self, Vec<Effect>) {
        let mut s = Session {
            menu: flow.start.clone(),
            failures: 0,
            keys: String::new(),
            path: Vec::new(),
            state: State::Prompting,
        };
        let effects = match flow.menus.get(&flow.start) {
            Some(m) => vec![Effect::Play(m.prompt.clone())],
            None => s.hangup(flow),
        };
        (s, effects)
    }

    /// The menu the caller is in.
    pub fn menu(&self) -> &str {
        &self.menu
    }

    /// When [`Session::tick`] has something to do, if ever.
    pub fn deadline(&self) -> Option<u64> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// Whether the caller has left the IVR.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// What was played last has finished: the caller's time to answer starts.
    pub fn prompt_finished(&mut self, flow: &Flow, now: u64) {
        if self.state != State::Prompting {
            return;
        }
        let timeout = flow.menus.get(&self.menu).map_or(1, |m| m.timeout_ms);
        self.state = State::Waiting {
            until: now.saturating_add(timeout),
        };
    }

    /// The caller pressed `key`.
    pub fn key(&mut self, flow: &Flow, key: char, now: u64) -> Vec<Effect> {
        let _ = now;
        if self.state == State::Done {
            return Vec::new();
        }
        let Some(menu) = flow.menus.get(&self.menu) else {
            return self.hangup(flow);
        };
        let key = key.to_ascii_uppercase();
        if self.keys.len() < MAX_KEYS {
            self.keys.push(key);
        }
        match menu.options.get(&key) {
            Some(action) => {
                self.record(format!("{}:{key}", self.menu));
                let action = action.clone();
                self.apply(flow, &action)
            }
            None => {
                self.record(format!("{}:invalid", self.menu));
                self.failed(flow, menu.invalid_prompt.clone())
            }
        }
    }

    /// Time passes: silence past the deadline counts as a failed attempt.
    pub fn tick(&mut self, flow: &Flow, now: u64) -> Vec<Effect> {
        match self.state {
            State::Waiting { until } if now >= until => {
                self.record(format!("{}:timeout", self.menu));
                let prompt = flow
                    .menus
                    .get(&self.menu)
                    .map(|m| m.no_input_prompt.clone())
                    .unwrap_or_default();
                self.failed(flow, prompt)
            }
            _ => Vec::new(),
        }
    }

    fn failed(&mut self, flow: &Flow, before: Vec<String>) -> Vec<Effect> {
        let Some(menu) = flow.menus.get(&self.menu) else {
            return self.hangup(flow);
        };
        self.failures += 1;
        if self.failures > menu.retries {
            self.record(format!("{}:default", self.menu));
            let default = menu.default.clone();
            return self.apply(flow, &default);
        }
        self.state = State::Prompting;
        let mut prompt = before;
        prompt.extend(menu.prompt.iter().cloned());
        vec![Effect::Play(prompt)]
    }

    fn apply(&mut self, flow: &Flow, action: &Action) -> Vec<Effect> {
        match action {
            Action::Menu(name) => match flow.menus.get(name) {
                Some(m) => {
                    self.menu.clone_from(name);
                    self.failures = 0;
                    self.state = State::Prompting;
                    vec![Effect::Play(m.prompt.clone())]
                }
                None => self.hangup(flow),
            },
            Action::Repeat => {
                self.state = State::Prompting;
                flow.menus
                    .get(&self.menu)
                    .map(|m| vec![Effect::Play(m.prompt.clone())])
                    .unwrap_or_default()
            }
            Action::Queue { queue, priority } => {
                self.state = State::Done;
                vec![Effect::Queue {
                    queue: queue.clone(),
                    priority: *priority,
                    keys: self.keys.clone(),
                    path: self.path.clone(),
                }]
            }
            Action::Hangup => self.hangup(flow),
        }
    }

    fn hangup(&mut self, flow: &Flow) -> Vec<Effect> {
        self.state = State::Done;
        vec![Effect::Hangup {
            prompt: flow.goodbye.clone(),
            path: self.path.clone(),
        }]
    }

    fn record(&mut self, step: String) {
        if self.path.len() < MAX_PATH {
            self.path.push(step);
        }
    }

    /// The menu choices so far (for the call's record when it ends in the IVR).
    pub fn path(&self) -> &[String] {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn flow() -> Flow {
        let root = Menu {
            prompt: names(&["menu/welcome", "menu/options"]),
            options: BTreeMap::from([
                (
                    '1',
                    Action::Queue {
                        queue: "sales".into(),
                        priority: 10,
                    },
                ),
                ('2', Action::Menu("billing".into())),
                ('0', Action::Repeat),
                ('#', Action::Hangup),
            ]),
            timeout_ms: 5_000,
            retries: 2,
            invalid_prompt: names(&["menu/invalid"]),
            no_input_prompt: names(&["menu/no-input"]),
            default: Action::Queue {
                queue: "support".into(),
                priority: 0,
            },
        };
        let billing = Menu {
            prompt: names(&["menu/billing"]),
            options: BTreeMap::from([(
                '1',
                Action::Queue {
                    queue: "billing".into(),
                    priority: 50,
                },
            )]),
            timeout_ms: 3_000,
            retries: 0,
            invalid_prompt: names(&["menu/invalid"]),
            no_input_prompt: vec![],
            default: Action::Hangup,
        };
        Flow {
            start: "root".into(),
            menus: BTreeMap::from([("root".into(), root), ("billing".into(), billing)]),
            goodbye: names(&["menu/goodbye"]),
        }
    }

    #[test]
    fn a_key_chooses_a_queue_even_during_the_prompt() {
        let f = flow();
        let (mut s, e) = Session::start(&f);
        assert_eq!(
            e,
            vec![Effect::Play(names(&["menu/welcome", "menu/options"]))]
        );
        assert_eq!(s.deadline(), None, "no timeout while the prompt plays");
        let e = s.key(&f, '1', 100);
        assert_eq!(
            e,
            vec![Effect::Queue {
                queue: "sales".into(),
                priority: 10,
                keys: "1".into(),
                path: names(&["root:1"]),
            }]
        );
        assert!(s.done());
        assert!(
            s.key(&f, '2', 200).is_empty(),
            "keys after the choice are ignored"
        );
    }

    #[test]
    fn submenus_invalid_keys_and_silence() {
        let f = flow();
        let (mut s, _) = Session::start(&f);
        let e = s.key(&f, '7', 0);
        assert_eq!(
            e,
            vec![Effect::Play(names(&[
                "menu/invalid",
                "menu/welcome",
                "menu/options"
            ]))]
        );
        s.prompt_finished(&f, 1_000);
        assert_eq!(s.deadline(), Some(6_000));
        assert!(s.tick(&f, 5_999).is_empty());
        let e = s.tick(&f, 6_000);
        assert_eq!(
            e,
            vec![Effect::Play(names(&[
                "menu/no-input",
                "menu/welcome",
                "menu/options"
            ]))]
        );
        // Two failures so far; a key now still works, and resets nothing it should not.
        assert_eq!(
            s.key(&f, '2', 7_000),
            vec![Effect::Play(names(&["menu/billing"]))]
        );
        assert_eq!(s.menu(), "billing");
        let e = s.key(&f, '1', 7_100);
        assert_eq!(
            e,
            vec![Effect::Queue {
                queue: "billing".into(),
                priority: 50,
                keys: "721".into(),
                path: names(&["root:invalid", "root:timeout", "root:2", "billing:1"]),
            }]
        );
    }

    #[test]
    fn retries_used_up_take_the_default() {
        let f = flow();
        let (mut s, _) = Session::start(&f);
        for i in 0..2 {
            s.prompt_finished(&f, i * 10_000);
            assert_eq!(s.tick(&f, i * 10_000 + 5_000).len(), 1);
            assert!(!s.done());
        }
        s.prompt_finished(&f, 30_000);
        let e = s.tick(&f, 35_000);
        assert_eq!(
            e,
            vec![Effect::Queue {
                queue: "support".into(),
                priority: 0,
                keys: String::new(),
                path: names(&[
                    "root:timeout",
                    "root:timeout",
                    "root:timeout",
                    "root:default"
                ]),
            }]
        );
    }

    #[test]
    fn a_default_hangup_says_goodbye() {
        let f = flow();
        let (mut s, _) = Session::start(&f);
        s.key(&f, '2', 0);
        let e = s.key(&f, '9', 10);
        assert_eq!(
            e,
            vec![Effect::Hangup {
                prompt: names(&["menu/goodbye"]),
                path: names(&["root:2", "billing:invalid", "billing:default"]),
            }]
        );
    }

    #[test]
    fn repeat_and_hangup_keys() {
        let f = flow();
        let (mut s, _) = Session::start(&f);
        s.prompt_finished(&f, 0);
        assert_eq!(
            s.key(&f, '0', 10),
            vec![Effect::Play(names(&["menu/welcome", "menu/options"]))]
        );
        assert_eq!(s.deadline(), None);
        assert!(matches!(
            s.key(&f, '#', 20).as_slice(),
            [Effect::Hangup { .. }]
        ));
    }

    #[test]
    fn actions_are_read_from_text() {
        let queue = |q: &str, priority| Action::Queue {
            queue: q.into(),
            priority,
        };
        for (text, action) in [
            ("queue:sales", queue("sales", 0)),
            ("queue:sales:0", queue("sales", 0)),
            ("queue:sales:10", queue("sales", 10)),
            ("queue:sales:100", queue("sales", 100)),
            ("  queue:support.it@b-2  ", queue("support.it@b-2", 0)),
            ("menu:billing", Action::Menu("billing".into())),
            ("menu:a b", Action::Menu("a b".into())),
            ("repeat", Action::Repeat),
            ("hangup", Action::Hangup),
            (" hangup\n", Action::Hangup),
        ] {
            assert_eq!(text.parse::<Action>(), Ok(action), "{text:?}");
        }
    }

    #[test]
    fn bad_actions_say_what_is_wrong() {
        for (text, error, message) in [
            (
                "queue:",
                ParseActionError::NoQueue {
                    text: "queue:".into(),
                },
                r#""queue:" has no queue name"#,
            ),
            (
                "queue::5",
                ParseActionError::NoQueue {
                    text: "queue::5".into(),
                },
                r#""queue::5" has no queue name"#,
            ),
            (
                "queue:sales:high",
                ParseActionError::BadPriority {
                    text: "queue:sales:high".into(),
                    queue: "sales".into(),
                },
                r#""queue:sales:high": the priority must be 0–100"#,
            ),
            (
                "queue:sales:101",
                ParseActionError::BadPriority {
                    text: "queue:sales:101".into(),
                    queue: "sales".into(),
                },
                r#""queue:sales:101": the priority must be 0–100"#,
            ),
            (
                "queue:sales:-1",
                ParseActionError::BadPriority {
                    text: "queue:sales:-1".into(),
                    queue: "sales".into(),
                },
                r#""queue:sales:-1": the priority must be 0–100"#,
            ),
            (
                "queue:sales:",
                ParseActionError::BadPriority {
                    text: "queue:sales:".into(),
                    queue: "sales".into(),
                },
                r#""queue:sales:": the priority must be 0–100"#,
            ),
            (
                "queue:a:1:2",
                ParseActionError::BadPriority {
                    text: "queue:a:1:2".into(),
                    queue: "a".into(),
                },
                r#""queue:a:1:2": the priority must be 0–100"#,
            ),
            (
                "menu:",
                ParseActionError::NoMenu {
                    text: "menu:".into(),
                },
                r#""menu:" has no menu name"#,
            ),
            (
                "transfer",
                ParseActionError::Unknown {
                    text: "transfer".into(),
                },
                r#""transfer" is not an action (queue:NAME, queue:NAME:PRIORITY, menu:NAME, repeat or hangup)"#,
            ),
            (
                "",
                ParseActionError::Unknown { text: "".into() },
                r#""" is not an action (queue:NAME, queue:NAME:PRIORITY, menu:NAME, repeat or hangup)"#,
            ),
            (
                "Hangup",
                ParseActionError::Unknown {
                    text: "Hangup".into(),
                },
                r#""Hangup" is not an action (queue:NAME, queue:NAME:PRIORITY, menu:NAME, repeat or hangup)"#,
            ),
            (
                "queue sales",
                ParseActionError::Unknown {
                    text: "queue sales".into(),
                },
                r#""queue sales" is not an action (queue:NAME, queue:NAME:PRIORITY, menu:NAME, repeat or hangup)"#,
            ),
        ] {
            let got = text.parse::<Action>();
            assert_eq!(got, Err(error), "{text:?}");
            assert_eq!(
                got.map_err(|e| e.to_string()),
                Err(message.to_owned()),
                "{text:?}"
            );
        }
        // The message quotes what was written, spaces and all.
        assert_eq!(
            " menu: ".parse::<Action>().map_err(|e| e.to_string()),
            Err(r#"" menu: " has no menu name"#.to_owned())
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut f = flow();
        assert_eq!(f.validate(), Ok(()));
        f.menus
            .get_mut("root")
            .expect("root")
            .options
            .insert('5', Action::Menu("nowhere".into()));
        assert_eq!(
            f.validate(),
            Err("menu `root`, key 5: menu `nowhere` is not defined".into())
        );
        let mut f = flow();
        f.menus
            .get_mut("root")
            .expect("root")
            .options
            .insert('x', Action::Repeat);
        assert_eq!(
            f.validate(),
            Err("menu `root`: `x` is not a keypad key".into())
        );
        let mut f = flow();
        f.start = "main".into();
        assert!(f.validate().is_err());
        let mut f = flow();
        f.menus.get_mut("billing").expect("billing").default = Action::Repeat;
        assert!(f.validate().is_err());
        assert_eq!(
            flow().prompt_names(),
            vec![
                "menu/billing",
                "menu/goodbye",
                "menu/invalid",
                "menu/no-input",
                "menu/options",
                "menu/welcome"
            ]
        );
    }
}
