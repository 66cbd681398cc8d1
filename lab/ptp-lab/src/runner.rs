//! Where a run goes: one row per runner (the bench kernel under QEMU or Bochs, the host runner,
//! criterion, the real-hardware image, a LAVA job through lava-run). A row says which front door
//! offers it, what it needs set up, and which option values it fixes. How each one starts is the
//! Python runner table's (tools/ptplab/runners.py), keyed by [`Runner::name`].
//!
//! ("Target" alone means a speed target in this lab: [`crate::target`].)

use crate::option::{opt, Applies, Kind, Opt};

/// The script a person types: `scripts/bench.sh` or `scripts/lava.sh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    Bench,
    Lava,
}

impl Door {
    pub const ALL: [Door; 2] = [Door::Bench, Door::Lava];

    pub const fn name(self) -> &'static str {
        match self {
            Door::Bench => "bench",
            Door::Lava => "lava",
        }
    }

    pub const fn script(self) -> &'static str {
        match self {
            Door::Bench => "scripts/bench.sh",
            Door::Lava => "scripts/lava.sh",
        }
    }

    pub fn from_name(s: &str) -> Option<Door> {
        Door::ALL.into_iter().find(|d| d.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Qemu,
    Bochs,
    Host,
    Criterion,
    Image,
    Netboot,
    LavaLocal,
    LavaJobs,
    LavaServer,
}

/// How the arguments choose a runner.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    /// What its door runs when no other runner is chosen.
    Default,
    /// Its own option (`--host`, `--image FILE`): declared here, listed with the others.
    Flag(Opt),
    /// A value of `--accel`.
    Accel(&'static str),
}

impl Select {
    pub const fn flag(&self) -> Option<&Opt> {
        match self {
            Select::Flag(o) => Some(o),
            _ => None,
        }
    }
}

/// One runner's row: what it is, from which the options it takes follow ([`Applies`]).
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub runner: Runner,
    pub door: Door,
    pub select: Select,
    /// It runs something here, writes a results file and can hang (`--out`, `--timeout`).
    pub runs_here: bool,
    /// It then writes the decision report, and can repeat (`--report`, `--repeat`).
    pub reports: bool,
    /// It boots the kernel in an emulator whose CPUs and accelerator are chosen (`--cpus`, `--accel`).
    pub guest: bool,
    /// ... and whose RAM is chosen (`--memory`).
    pub guest_ram: bool,
    /// In words, for messages: "the host runner".
    pub title: &'static str,
    /// What the set-up provides first (tools/ptplab/packages.py's NEEDS; `kernel`: its build).
    pub needs: &'static [&'static str],
    /// Option values this runner cannot change (option name, value), and why.
    pub fixed: &'static [(&'static str, &'static str)],
    pub fixed_why: &'static str,
    /// It boots the bench kernel (in an emulator or on a machine), so guest RAM and CPUs apply.
    pub kernel: bool,
    /// It writes a GRUB menu for real machines (`--menu-timeout`).
    pub menu: bool,
}

pub const RUNNERS: [Row; 9] = [
    Row {
        runner: Runner::Qemu,
        door: Door::Bench,
        select: Select::Default,
        runs_here: true,
        reports: true,
        guest: true,
        guest_ram: true,
        title: "the bench kernel under QEMU",
        needs: &["qemu", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: false,
    },
    Row {
        runner: Runner::Bochs,
        door: Door::Bench,
        select: Select::Accel("bochs"),
        runs_here: true,
        reports: true,
        guest: true,
        guest_ram: true,
        title: "the bench kernel under Bochs",
        needs: &["grub", "bochs", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: false,
    },
    Row {
        runner: Runner::Host,
        door: Door::Bench,
        select: Select::Flag(
            opt("host", "--host", Kind::Switch, Applies::Only("host"))
                .help("run the suites in a host process on simulated memory"),
        ),
        runs_here: true,
        reports: true,
        guest: false,
        guest_ram: false,
        title: "the host runner (--host)",
        needs: &[],
        fixed: &[],
        fixed_why: "",
        kernel: false,
        menu: false,
    },
    Row {
        runner: Runner::Criterion,
        door: Door::Bench,
        select: Select::Flag(
            opt("criterion", "--criterion", Kind::Switch, Applies::Only("criterion"))
                .help("run the suites under criterion on the host (arguments after -- go to criterion)"),
        ),
        runs_here: true,
        reports: true,
        guest: false,
        guest_ram: false,
        title: "criterion (--criterion)",
        needs: &[],
        fixed: &[],
        fixed_why: "",
        kernel: false,
        menu: false,
    },
    Row {
        runner: Runner::Image,
        door: Door::Bench,
        select: Select::Flag(
            opt("image", "--image", Kind::Path, Applies::Only("image"))
                .metavar("FILE")
                .help("write the hybrid real-hardware image (BIOS and UEFI, CD and USB stick) instead of \
                       running: its GRUB menu's first entry runs these options, then the standard suites, a \
                       pool-size sweep, the selftest and the TLB suite on every CPU"),
        ),
        runs_here: false,
        reports: false,
        guest: false,
        guest_ram: false,
        title: "the real-hardware image (--image)",
        needs: &["grub", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: true,
    },
    Row {
        runner: Runner::Netboot,
        door: Door::Bench,
        select: Select::Flag(
            opt("netboot", "--netboot", Kind::Path, Applies::Only("netboot"))
                .metavar("DIR")
                .help("write DIR/tftp (GRUB's network directory for BIOS and UEFI, its menu, the kernel and the \
                       layouts module: point a DHCP server's boot file at it) and DIR/http (the hybrid image and \
                       an iPXE script that sanboots it) instead of running; the menu is --image's"),
        ),
        runs_here: false,
        reports: false,
        guest: false,
        guest_ram: false,
        title: "the network-boot roots (--netboot)",
        needs: &["grub", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: true,
    },
    Row {
        runner: Runner::LavaLocal,
        door: Door::Lava,
        select: Select::Flag(
            opt("local", "--local", Kind::Switch, Applies::Only("lava-local"))
                .help("run the job of the QEMU device type through lava-run here (as root) and collect its log"),
        ),
        runs_here: true,
        reports: false,
        guest: true,
        guest_ram: false,
        title: "a LAVA job of the qemu device type (--local)",
        needs: &["qemu", "grub", "ovmf", "lava", "kernel"],
        fixed: &[("accel", "tcg"), ("cpus", "1")],
        fixed_why: "its device dictionary (lava/devices/qemu-tcg.jinja2) runs the kernel under TCG, one CPU, \
                    with the dictionary's memory",
        kernel: true,
        menu: false,
    },
    Row {
        runner: Runner::LavaJobs,
        door: Door::Lava,
        select: Select::Flag(
            opt("jobs", "--jobs", Kind::Path, Applies::Only("lava-jobs"))
                .metavar("DIR")
                .help("write LAVA jobs for real machines booted from the network (GRUB over PXE, iPXE), one per \
                       suite choice (these options, the pool-size sweep, the TLB suite on every CPU), in DIR/jobs, \
                       and what they deploy in DIR/artifacts, to serve at --artifacts"),
        ),
        runs_here: false,
        reports: false,
        guest: false,
        guest_ram: false,
        title: "LAVA jobs for real machines (--jobs)",
        needs: &["grub", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: false,
    },
    Row {
        runner: Runner::LavaServer,
        door: Door::Lava,
        select: Select::Flag(
            opt("server", "--server", Kind::Text, Applies::Only("lava-server"))
                .metavar("IDENTITY")
                .help("submit a job per device in service and suite choice (--choices) to a LAVA server with \
                       lavacli's IDENTITY (the loopback server of scripts/lava-server.sh is ptplab-local), wait for \
                       them, fetch and collect each job's log however it ended, and show the devices side by side"),
        ),
        runs_here: true,
        reports: false,
        guest: false,
        guest_ram: false,
        title: "LAVA jobs on a server (--server)",
        needs: &["grub", "lava", "kernel"],
        fixed: &[],
        fixed_why: "",
        kernel: true,
        menu: false,
    },
];

impl Runner {
    pub const ALL: [Runner; 9] = [
        Runner::Qemu,
        Runner::Bochs,
        Runner::Host,
        Runner::Criterion,
        Runner::Image,
        Runner::Netboot,
        Runner::LavaLocal,
        Runner::LavaJobs,
        Runner::LavaServer,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Runner::Qemu => "qemu",
            Runner::Bochs => "bochs",
            Runner::Host => "host",
            Runner::Criterion => "criterion",
            Runner::Image => "image",
            Runner::Netboot => "netboot",
            Runner::LavaLocal => "lava-local",
            Runner::LavaJobs => "lava-jobs",
            Runner::LavaServer => "lava-server",
        }
    }

    pub fn row(self) -> &'static Row {
        &RUNNERS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runner_has_its_own_row() {
        for r in Runner::ALL {
            assert_eq!(r.row().runner, r);
        }
    }
}
