//! Every option of a run, once: its flag, the word it becomes on the kernel's command line, its
//! kind and limits, its default, its help, and the runners that take it. `ptp-host facts` exports
//! the table (key `options`), the Python front doors build their `--help` from it, and
//! [`crate::plan`] (`ptp-host plan`) is the one check of a run's arguments, whatever the way in.

use crate::config::key;
pub use crate::option::{opt, Applies, Kind, Opt};
use crate::runner::{Runner, RUNNERS};

impl Opt {
    /// Whether `runner` takes it (from what the runner's row says it is).
    pub fn takes(&self, runner: Runner) -> bool {
        let r = runner.row();
        match self.applies {
            Applies::Every => true,
            Applies::Runs => r.runs_here,
            Applies::Reports => r.reports,
            Applies::Guest => r.guest,
            Applies::GuestRam => r.guest_ram,
            Applies::Kernel => r.kernel,
            Applies::Menu => r.menu,
            Applies::Only(name) => runner.name() == name,
        }
    }

    /// The runners that take it, in table order.
    pub fn on(&self) -> impl Iterator<Item = Runner> + '_ {
        Runner::ALL.into_iter().filter(|r| self.takes(*r))
    }
}

const POSITIVE: Kind = Kind::Number {
    min: 1,
    max: u64::MAX,
};

pub const ACCELS: &[&str] = &["auto", "kvm", "tcg", "bochs"];

/// The LAVA devices `scripts/lava.sh --local` runs a job on (lava/devices/NAME.jinja2): the
/// qemu type, and stand-ins for real machines booted from the network (a bounded QEMU with
/// SeaBIOS or OVMF under QEMU's user-mode network).
pub const LAVA_DEVICES: &[&str] = &[
    "qemu-tcg",
    "grub-pxe-bios",
    "grub-pxe-uefi",
    "ipxe-bios",
    "ipxe-uefi",
];

/// The options, in the order `--help` lists them.
pub const OPTIONS: &[Opt] = &[
    opt("accel", "--accel", Kind::Choice(ACCELS), Applies::Guest)
        .default("auto")
        .help("auto (default): probe KVM with a short boot, fall back to TCG loudly if it cannot run the kernel; \
               kvm: fail instead of falling back; tcg: QEMU's emulation; bochs: the Bochs emulator's Intel \
               Haswell (PCID, INVPCID, x2APIC), booting the GRUB ISO"),
    opt("pool_pages", "--pool-pages", Kind::Pools, Applies::Every)
        .word(key::POOLS)
        .metavar("N,...")
        .help("pool sizes to sweep, e.g. 1024,4096,16384 (default: the standard size)"),
    opt("suite", "--suite", Kind::Suites, Applies::Every)
        .word(key::SUITES)
        .metavar("NAME,...")
        .help("suites, e.g. alloc,map (default: all)"),
    opt("quick", "--quick", Kind::Switch, Applies::Every)
        .word(key::QUICK)
        .help("a few samples per benchmark"),
    opt("selftest", "--selftest", Kind::Switch, Applies::Every)
        .word(key::MODE)
        .help("every check, minimal timing (what tests run)"),
    opt("out", "--out", Kind::Path, Applies::Runs)
        .metavar("DIR")
        .default("results")
        .help("directory for the results file"),
    opt("timeout", "--timeout", POSITIVE, Applies::Runs)
        .metavar("S")
        .help("seconds before a run counts as hung (default: 120 with --quick or --selftest, else 1800; \
               five times that under Bochs)"),
    opt("cpus", "--cpus", Kind::Number { min: 1, max: crate::acpi::MAX_CPUS as u64 }, Applies::Guest)
        .metavar("N")
        .default("1")
        .help("CPUs of the guest (QEMU -smp, Bochs cpu count); the kernel starts them all"),
    opt("memory", "--memory", POSITIVE, Applies::GuestRam)
        .metavar("MiB")
        .help("guest RAM in MiB (default: fits the pools)"),
    opt("seed", "--seed", POSITIVE, Applies::Every)
        .word(key::SEED)
        .metavar("N")
        .help("seed of the random fills (default: the lab's)"),
    opt("report", "--report", Kind::Path, Applies::Reports)
        .metavar("DIR")
        .default("target/report")
        .help("where the decision report (report.md) is written after the run"),
    opt("layouts", "--layouts", Kind::Path, Applies::Every)
        .metavar("DIR")
        .default("results/layouts")
        .help("with --suite layouts or churn: the layouts handed to the kernel as a boot module"),
    opt("repeat", "--repeat", POSITIVE, Applies::Reports)
        .metavar("K")
        .default("1")
        .help("run K times (K files), then print the run-to-run spread of every median"),
    opt("menu_timeout", "--menu-timeout", Kind::Number { min: 0, max: 600 }, Applies::Menu)
        .metavar("S")
        .default("5")
        .help("with --image or --netboot: seconds the GRUB menu waits before its first entry"),
    opt("device", "--device", Kind::Choice(LAVA_DEVICES), Applies::Only("lava-local"))
        .metavar("NAME")
        .default("qemu-tcg")
        .help("the LAVA device: qemu-tcg (lava-server's qemu type), or a stand-in for a machine booted from the \
               network (QEMU's user-mode network, bounded): grub-pxe-bios, grub-pxe-uefi (GRUB over PXE and \
               TFTP), ipxe-bios, ipxe-uefi (iPXE sanboot of the image over HTTP)"),
    opt("choices", "--choices", Kind::Text, Applies::Only("lava-server"))
        .metavar("KEY,...")
        .default("default")
        .help("with --server: the suite choices each device runs, one job per device and choice: default (these \
               options), standard, sweep, selftest, tlb (the image menu's runs)"),
    opt("artifacts", "--artifacts", Kind::Text, Applies::Only("lava-jobs"))
        .metavar("URL")
        .help("with --jobs: the URL at which the lab serves DIR/artifacts (the jobs download the kernel, its \
               module and the images from there)"),
    opt("validate", "--validate", Kind::Switch, Applies::Every)
        .help("only check the options, and say what the run needs set up (what the scripts do first)"),
    opt("kernel", "--kernel", Kind::Path, Applies::Kernel).hidden(),
    opt("host_bin", "--host-bin", Kind::Path, Applies::Only("host")).hidden(),
    opt("qemu", "--qemu", Kind::Text, Applies::Only("qemu")).default("qemu-system-x86_64").hidden(),
    opt("bochs", "--bochs", Kind::Text, Applies::Only("bochs")).default("bochs").hidden(),
    // Raw words for the kernel's command line, unchecked: how tests ask for fault=pf.
    opt("append_extra", "--append-extra", Kind::Text, Applies::Every).hidden(),
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
    fn an_option_of_one_runner_names_a_runner_there_is() {
        for o in all() {
            if let Applies::Only(name) = o.applies {
                assert!(
                    Runner::ALL.iter().any(|r| r.name() == name),
                    "{}: {name}",
                    o.name
                );
            }
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
