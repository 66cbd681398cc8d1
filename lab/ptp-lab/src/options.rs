//! Every option of a run, once: its flag, the word it becomes on the kernel's command line, its
//! kind and limits, its default, its help, and the runners that take it. `ptp-host facts` exports
//! the table (key `options`), the Python front doors build their `--help` from it, and
//! [`crate::plan`] (`ptp-host plan`) is the one check of a run's arguments, whatever the way in.

use crate::config::key;
use crate::runner::Runner::{self, Bochs, Criterion, Host, Image, LavaLocal, Qemu};

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
    /// The runners that take it; any other refuses it by name.
    pub on: &'static [Runner],
    /// A test hook, left out of `--help`.
    pub hidden: bool,
}

/// Every runner.
const ALL: &[Runner] = &[Qemu, Bochs, Host, Criterion, Image, LavaLocal];
/// The runners that run something here, write a results file and can hang.
const RUNS: &[Runner] = &[Qemu, Bochs, Host, Criterion, LavaLocal];
/// The runners that run it here and then write the decision report.
const REPORTS: &[Runner] = &[Qemu, Bochs, Host, Criterion];

const fn opt(name: &'static str, flag: &'static str, kind: Kind, on: &'static [Runner]) -> Opt {
    Opt {
        name,
        flag,
        word: None,
        kind,
        metavar: "",
        default: "",
        help: "",
        on,
        hidden: false,
    }
}

impl Opt {
    const fn word(mut self, w: &'static str) -> Opt {
        self.word = Some(w);
        self
    }
    const fn default(mut self, d: &'static str) -> Opt {
        self.default = d;
        self
    }
    const fn metavar(mut self, m: &'static str) -> Opt {
        self.metavar = m;
        self
    }
    const fn help(mut self, h: &'static str) -> Opt {
        self.help = h;
        self
    }
    const fn hidden(mut self) -> Opt {
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
    opt("accel", "--accel", Kind::Choice(ACCELS), &[Qemu, Bochs, LavaLocal])
        .default("auto")
        .help("auto (default): probe KVM with a short boot, fall back to TCG loudly if it cannot run the kernel; \
               kvm: fail instead of falling back; tcg: QEMU's emulation; bochs: the Bochs emulator's Intel \
               Haswell (PCID, INVPCID, x2APIC), booting the GRUB ISO"),
    opt("pool_pages", "--pool-pages", Kind::Pools, ALL)
        .word(key::POOLS)
        .metavar("N,...")
        .help("pool sizes to sweep, e.g. 1024,4096,16384 (default: the standard size)"),
    opt("suite", "--suite", Kind::Suites, ALL)
        .word(key::SUITES)
        .metavar("NAME,...")
        .help("suites, e.g. alloc,map (default: all)"),
    opt("quick", "--quick", Kind::Switch, ALL)
        .word(key::QUICK)
        .help("a few samples per benchmark"),
    opt("selftest", "--selftest", Kind::Switch, ALL)
        .word(key::MODE)
        .help("every check, minimal timing (what tests run)"),
    opt("out", "--out", Kind::Path, RUNS)
        .metavar("DIR")
        .default("results")
        .help("directory for the results file"),
    opt("host", "--host", Kind::Switch, &[Host])
        .help("run the suites in a host process on simulated memory"),
    opt("criterion", "--criterion", Kind::Switch, &[Criterion])
        .help("run the suites under criterion on the host (arguments after -- go to criterion)"),
    opt("timeout", "--timeout", POSITIVE, RUNS)
        .metavar("S")
        .help("seconds before a run counts as hung (default: 120 with --quick or --selftest, else 1800; \
               five times that under Bochs)"),
    opt("cpus", "--cpus", Kind::Number { min: 1, max: crate::acpi::MAX_CPUS as u64 }, &[Qemu, Bochs, LavaLocal])
        .metavar("N")
        .default("1")
        .help("CPUs of the guest (QEMU -smp, Bochs cpu count); the kernel starts them all"),
    opt("memory", "--memory", POSITIVE, &[Qemu, Bochs])
        .metavar("MiB")
        .help("guest RAM in MiB (default: fits the pools)"),
    opt("seed", "--seed", POSITIVE, ALL)
        .word(key::SEED)
        .metavar("N")
        .help("seed of the random fills (default: the lab's)"),
    opt("report", "--report", Kind::Path, REPORTS)
        .metavar("DIR")
        .default("target/report")
        .help("where the decision report (report.md) is written after the run"),
    opt("layouts", "--layouts", Kind::Path, ALL)
        .metavar("DIR")
        .default("results/layouts")
        .help("with --suite layouts or churn: the layouts handed to the kernel as a boot module"),
    opt("repeat", "--repeat", POSITIVE, REPORTS)
        .metavar("K")
        .default("1")
        .help("run K times (K files), then print the run-to-run spread of every median"),
    opt("image", "--image", Kind::Path, &[Image])
        .metavar("FILE")
        .help("write the hybrid real-hardware image (BIOS and UEFI, CD and USB stick) instead of running: its \
               GRUB menu's first entry runs these options, then the standard suites, a pool-size sweep, the \
               selftest and the TLB suite on every CPU"),
    opt("menu_timeout", "--menu-timeout", Kind::Number { min: 0, max: 600 }, &[Image])
        .metavar("S")
        .default("5")
        .help("with --image: seconds the GRUB menu waits before its first entry"),
    opt("local", "--local", Kind::Switch, &[LavaLocal])
        .help("run the job of the QEMU device type through lava-run here (as root) and collect its log"),
    opt("validate", "--validate", Kind::Switch, ALL)
        .help("only check the options, and say what the run needs set up (what the scripts do first)"),
    opt("kernel", "--kernel", Kind::Path, &[Qemu, Bochs, Image, LavaLocal]).hidden(),
    opt("host_bin", "--host-bin", Kind::Path, &[Host]).hidden(),
    opt("qemu", "--qemu", Kind::Text, &[Qemu]).default("qemu-system-x86_64").hidden(),
    opt("bochs", "--bochs", Kind::Text, &[Bochs]).default("bochs").hidden(),
    // Raw words for the kernel's command line, unchecked: how tests ask for fault=pf.
    opt("append_extra", "--append-extra", Kind::Text, ALL).hidden(),
];

/// The option behind `flag`.
pub fn by_flag(flag: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.flag == flag)
}

/// The option named `name` (a plan's key).
pub fn by_name(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name == name)
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
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert!(
                    a.name != b.name && a.flag != b.flag,
                    "{} / {}",
                    a.name,
                    b.name
                );
                assert!(a.word.is_none() || a.word != b.word, "{}", a.name);
            }
            assert!(a.flag.starts_with("--") && !a.on.is_empty(), "{}", a.name);
            assert!(a.hidden || !a.help.is_empty(), "{} needs help", a.name);
        }
    }

    #[test]
    fn every_fixed_value_names_an_option_the_runner_takes() {
        for row in crate::runner::RUNNERS {
            for (name, _) in row.fixed {
                assert!(by_name(name).unwrap().on.contains(&row.runner), "{name}");
            }
        }
    }
}
