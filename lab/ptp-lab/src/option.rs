//! What an option is: its flag, the kernel word it sets, its kind and limits, default, help, and
//! which runners take it. The options themselves are [`crate::options`]' table and the runners'
//! own ([`crate::runner`]).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Given or not.
    Switch,
    /// A whole number in `min..=max`.
    Number { min: u64, max: u64 },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Pool sizes, comma-separated (checked by [`crate::config::Config::parse`]).
    Pools,
    /// Suite names, comma-separated (checked by [`crate::config::Config::parse`]).
    Suites,
    /// A file or directory.
    Path,
    /// Free text (test hooks).
    Text,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Switch => "switch",
            Kind::Number { .. } => "number",
            Kind::Choice(_) => "choice",
            Kind::Pools => "pools",
            Kind::Suites => "suites",
            Kind::Path => "path",
            Kind::Text => "text",
        }
    }
}

/// One option.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// Its key in a validated plan.
    pub name: &'static str,
    pub flag: &'static str,
    /// The key it sets on the kernel's (and the host runner's) command line.
    pub word: Option<&'static str>,
    pub kind: Kind,
    pub metavar: &'static str,
    /// As text; empty when none, or when the plan computes it (the help says how).
    pub default: &'static str,
    pub help: &'static str,
    /// Which runners take it, by what they are (not by name, so a new runner's row alone says
    /// which options it takes); any other refuses it by name.
    pub applies: Applies,
    /// A test hook, left out of `--help`.
    pub hidden: bool,
}

/// Which runners take an option: by what a runner is (the fields of its row,
/// [`crate::runner::Row`]), or one runner by name (its own option, a test hook).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Every,
    /// Runs something here, writes a results file and can hang: `--out`, `--timeout`.
    Runs,
    /// Runs here and then writes the decision report: `--report`, `--repeat`.
    Reports,
    /// Boots the kernel in an emulator whose CPUs and accelerator are chosen: `--cpus`, `--accel`.
    Guest,
    /// ... and whose RAM is chosen: `--memory`.
    GuestRam,
    /// Boots the bench kernel (a file it is handed).
    Kernel,
    /// Writes a GRUB menu for real machines: `--menu-timeout`.
    Menu,
    Only(&'static str),
}

pub const fn opt(name: &'static str, flag: &'static str, kind: Kind, applies: Applies) -> Opt {
    Opt {
        name,
        flag,
        word: None,
        kind,
        metavar: "",
        default: "",
        help: "",
        applies,
        hidden: false,
    }
}

impl Opt {
    pub const fn word(mut self, w: &'static str) -> Opt {
        self.word = Some(w);
        self
    }
    pub const fn default(mut self, d: &'static str) -> Opt {
        self.default = d;
        self
    }
    pub const fn metavar(mut self, m: &'static str) -> Opt {
        self.metavar = m;
        self
    }
    pub const fn help(mut self, h: &'static str) -> Opt {
        self.help = h;
        self
    }
    pub const fn hidden(mut self) -> Opt {
        self.hidden = true;
        self
    }
}
