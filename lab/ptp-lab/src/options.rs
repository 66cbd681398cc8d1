//! Every option of a run, once: its flag, the word it becomes on the kernel's command line, its
//! kind and limits, its default, its help, and the runners that take it. `ptp-host facts` exports
//! the table (key `options`), the Python front doors build their `--help` from it, and
//! [`crate::plan`] (`ptp-host plan`) is the one check of a run's arguments, whatever the way in.

use crate::config::key;
use crate::runner::{Row, Runner, RUNNERS};

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
    /// Whether a runner takes it, from the runner's row (what the runner is, not its name, so
    /// a new runner's row alone says which options it takes); any other refuses it by name.
    pub applies: fn(&Row) -> bool,
    /// A test hook, left out of `--help`.
    pub hidden: bool,
}

/// Who takes an option, by what the runner is.
pub const EVERY: fn(&Row) -> bool = |_| true;
/// Runs something here, writes a results file and can hang: `--out`, `--timeout`.
pub const RUNS: fn(&Row) -> bool = |r| r.runs_here;
/// Runs here and then writes the decision report: `--report`, `--repeat`.
pub const REPORTS: fn(&Row) -> bool = |r| r.reports;
/// Boots the kernel in an emulator whose CPUs and accelerator are chosen: `--cpus`, `--accel`.
pub const GUEST: fn(&Row) -> bool = |r| r.guest;
/// ... and whose RAM is chosen: `--memory`.
pub const GUEST_RAM: fn(&Row) -> bool = |r| r.guest_ram;
/// Boots the bench kernel (a file it is handed).
pub const KERNEL: fn(&Row) -> bool = |r| r.kernel;

pub const fn opt(
    name: &'static str,
    flag: &'static str,
    kind: Kind,
    applies: fn(&Row) -> bool,
) -> Opt {
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
    pub fn takes(&self, runner: Runner) -> bool {
        (self.applies)(runner.row())
    }

    /// The runners that take it, in table order.
    pub fn on(&self) -> impl Iterator<Item = Runner> + '_ {
        RUNNERS
            .iter()
            .filter(|r| (self.applies)(r))
            .map(|r| r.runner)
    }

    const fn word(mut self, w: &'static str) -> Opt {
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

const POSITIVE: Kind = Kind::Number {
    min: 1,
    max: u64::MAX,
};

pub const ACCELS: &[&str] = &["auto", "kvm", "tcg", "bochs"];

/// The options, in the order `--help` lists them.
pub const OPTIONS: &[Opt] = &[
    opt("accel", "--accel", Kind::Choice(ACCELS), GUEST)
        .default("auto")
        .help("auto (default): probe KVM with a short boot, fall back to TCG loudly if it cannot run the kernel; \
               kvm: fail instead of falling back; tcg: QEMU's emulation; bochs: the Bochs emulator's Intel \
               Haswell (PCID, INVPCID, x2APIC), booting the GRUB ISO"),
    opt("pool_pages", "--pool-pages", Kind::Pools, EVERY)
        .word(key::POOLS)
        .metavar("N,...")
        .help("pool sizes to sweep, e.g. 1024,4096,16384 (default: the standard size)"),
    opt("suite", "--suite", Kind::Suites, EVERY)
        .word(key::SUITES)
        .metavar("NAME,...")
        .help("suites, e.g. alloc,map (default: all)"),
    opt("quick", "--quick", Kind::Switch, EVERY)
        .word(key::QUICK)
        .help("a few samples per benchmark"),
    opt("selftest", "--selftest", Kind::Switch, EVERY)
        .word(key::MODE)
        .help("every check, minimal timing (what tests run)"),
    opt("out", "--out", Kind::Path, RUNS)
        .metavar("DIR")
        .default("results")
        .help("directory for the results file"),
    opt("timeout", "--timeout", POSITIVE, RUNS)
        .metavar("S")
        .help("seconds before a run counts as hung (default: 120 with --quick or --selftest, else 1800; \
               five times that under Bochs)"),
    opt("cpus", "--cpus", Kind::Number { min: 1, max: crate::acpi::MAX_CPUS as u64 }, GUEST)
        .metavar("N")
        .default("1")
        .help("CPUs of the guest (QEMU -smp, Bochs cpu count); the kernel starts them all"),
    opt("memory", "--memory", POSITIVE, GUEST_RAM)
        .metavar("MiB")
        .help("guest RAM in MiB (default: fits the pools)"),
    opt("seed", "--seed", POSITIVE, EVERY)
        .word(key::SEED)
        .metavar("N")
        .help("seed of the random fills (default: the lab's)"),
    opt("report", "--report", Kind::Path, REPORTS)
        .metavar("DIR")
        .default("target/report")
        .help("where the decision report (report.md) is written after the run"),
    opt("layouts", "--layouts", Kind::Path, EVERY)
        .metavar("DIR")
        .default("results/layouts")
        .help("with --suite layouts or churn: the layouts handed to the kernel as a boot module"),
    opt("repeat", "--repeat", POSITIVE, REPORTS)
        .metavar("K")
        .default("1")
        .help("run K times (K files), then print the run-to-run spread of every median"),
    opt("menu_timeout", "--menu-timeout", Kind::Number { min: 0, max: 600 }, |r| r.runner == Runner::Image)
        .metavar("S")
        .default("5")
        .help("with --image: seconds the GRUB menu waits before its first entry"),
    opt("validate", "--validate", Kind::Switch, EVERY)
        .help("only check the options, and say what the run needs set up (what the scripts do first)"),
    opt("kernel", "--kernel", Kind::Path, KERNEL).hidden(),
    opt("host_bin", "--host-bin", Kind::Path, |r| r.runner == Runner::Host).hidden(),
    opt("qemu", "--qemu", Kind::Text, |r| r.runner == Runner::Qemu).default("qemu-system-x86_64").hidden(),
    opt("bochs", "--bochs", Kind::Text, |r| r.runner == Runner::Bochs).default("bochs").hidden(),
    // Raw words for the kernel's command line, unchecked: how tests ask for fault=pf.
    opt("append_extra", "--append-extra", Kind::Text, EVERY).hidden(),
];

/// Every option: each runner's own (`--host`, `--image FILE`, ...: what to run), then the
/// table's.
pub fn all() -> impl Iterator<Item = &'static Opt> {
    RUNNERS
        .iter()
        .filter_map(|r| r.select.flag())
        .chain(OPTIONS.iter())
}

/// The option behind `flag`.
pub fn by_flag(flag: &str) -> Option<&'static Opt> {
    all().find(|o| o.flag == flag)
}

/// The option named `name` (a plan's key).
pub fn by_name(name: &str) -> Option<&'static Opt> {
    all().find(|o| o.name == name)
}

/// The kernel command-line keys, in table order.
pub fn words() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().filter_map(|o| o.word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_and_words_are_unique() {
        for (i, a) in all().enumerate() {
            for b in all().skip(i + 1) {
                assert!(
                    a.name != b.name && a.flag != b.flag,
                    "{} / {}",
                    a.name,
                    b.name
                );
                assert!(a.word.is_none() || a.word != b.word, "{}", a.name);
            }
            assert!(
                a.flag.starts_with("--") && a.on().next().is_some(),
                "{}",
                a.name
            );
            assert!(a.hidden || !a.help.is_empty(), "{} needs help", a.name);
        }
    }

    #[test]
    fn every_fixed_value_names_an_option_the_runner_takes() {
        for row in crate::runner::RUNNERS {
            for (name, _) in row.fixed {
                assert!(by_name(name).unwrap().takes(row.runner), "{name}");
            }
        }
    }
}
