//! The speed targets, in one table keyed by benchmark and contender, each with the direction of
//! its ratio; and the judge that turns a run's measurements into `target` records. Targets live
//! in benchmarks, never in tests: a missed target is a finding, not a failed run.

use crate::platform::Place;
use crate::record::{Counts, TargetRecord};
use crate::timing::Execution;
use core::fmt::Write;

/// What a target wants of the ratio between two contenders' estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    /// `other / ours >= x`: ours is at least x times faster (higher is better).
    FasterBy(f64),
    /// `ours / other <= x`: ours costs at most x times the other (lower is better).
    WithinOf(f64),
}

impl Want {
    pub fn ratio(self, ours: f64, other: f64) -> f64 {
        match self {
            Want::FasterBy(_) => other / ours,
            Want::WithinOf(_) => ours / other,
        }
    }

    pub fn met(self, ratio: f64) -> bool {
        match self {
            Want::FasterBy(x) => ratio >= x,
            Want::WithinOf(x) => ratio <= x,
        }
    }

    pub fn direction(self) -> &'static str {
        match self {
            Want::FasterBy(_) => "other/ours (higher is better)",
            Want::WithinOf(_) => "ours/other (lower is better)",
        }
    }

    /// ">= 15x" or "<= 1.2x".
    pub fn text(self) -> (&'static str, f64) {
        match self {
            Want::FasterBy(x) => (">=", x),
            Want::WithinOf(x) => ("<=", x),
        }
    }
}

/// A speed target on two contenders of one benchmark, judged at every pool size where both
/// were measured, on runs at `on` (kernel targets: native runs only).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub bench: &'static str,
    pub ours: &'static str,
    pub other: &'static str,
    pub want: Want,
    pub on: Place,
}

impl Target {
    /// Write the judgement of `ratio` (ours / other) at `pool_pages`: a line for a person (the
    /// kernel shows `# ` lines on its screen) and the `target` record; a miss counts in
    /// `counts`. Kernel targets are judged on native runs only.
    pub fn judge(
        &self,
        w: &mut dyn Write,
        ratio: f64,
        pool_pages: u32,
        execution: Execution,
        counts: &mut Counts,
    ) {
        let judged = self.on == Place::Host || execution == Execution::Native;
        let met = judged.then(|| self.want.met(ratio));
        if met == Some(false) {
            counts.targets_missed += 1;
        }
        let (op, x) = self.want.text();
        let _ = writeln!(
            w,
            "# {}, pool {pool_pages}: {ratio:.2}x (want {op} {x}x): {}",
            self.name,
            match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not judged (emulated)",
            }
        );
        let _ = TargetRecord {
            name: self.name,
            bench: self.bench,
            ours: self.ours,
            other: self.other,
            pool_pages,
            ratio,
            direction: self.want.direction(),
            want: format_args!("{op} {x}x"),
            met,
            note: if judged {
                ""
            } else {
                "not judged: emulated (privileged instructions are emulated)"
            },
        }
        .write(w);
    }
}

crate::json_object! {
    /// A target on a whole bench-kernel run, which the bench job times from outside: a field
    /// of the completed run record, at most `at_most_s` seconds, on runs that match.
    #[derive(Debug, Clone, Copy)]
    pub struct JobTarget {
        pub name: &'static str,
        /// `first_result_s` or `wall_s`, as the bench job records them.
        pub field: &'static str,
        pub at_most_s: f64 => crate::json::shortest,
        /// The accels it applies to (empty: any).
        pub accels: &'static [&'static str],
        pub quick: Option<bool>,
        pub mode: Option<crate::config::Mode>,
    }
}

pub static JOB_TARGETS: &[JobTarget] = &[
    JobTarget {
        name: "bench kernel: boot to first result <= 1 s (QEMU, direct PVH boot)",
        field: "first_result_s",
        at_most_s: 1.0,
        accels: &["kvm", "tcg"],
        quick: None,
        mode: None,
    },
    JobTarget {
        name: "bench kernel: default --quick run under TCG <= 60 s",
        field: "wall_s",
        at_most_s: 60.0,
        accels: &["tcg"],
        quick: Some(true),
        mode: Some(crate::config::Mode::Bench),
    },
];

const SEEN: usize = 256;

/// Collects the estimates targets need while a run goes, and judges them at its end.
pub struct Judge {
    targets: &'static [Target],
    seen: [(&'static str, &'static str, u32, f64); SEEN],
    n: usize,
}

impl Judge {
    /// A judge of `targets` (the lab's: `crate::suites::targets::TARGETS`).
    pub fn new(targets: &'static [Target]) -> Judge {
        Judge {
            targets,
            seen: [("", "", 0, 0.0); SEEN],
            n: 0,
        }
    }

    /// Remember a measurement if a target names it.
    pub fn note(&mut self, bench: &'static str, imp: &'static str, pool: u32, estimate: f64) {
        let wanted = self
            .targets
            .iter()
            .any(|t| t.bench == bench && (t.ours == imp || t.other == imp));
        if wanted && self.n < SEEN {
            self.seen[self.n] = (bench, imp, pool, estimate);
            self.n += 1;
        }
    }

    fn get(&self, bench: &str, imp: &str, pool: u32) -> Option<f64> {
        self.seen[..self.n]
            .iter()
            .find(|s| s.0 == bench && s.1 == imp && s.2 == pool)
            .map(|s| s.3)
    }

    /// One `target` record per target of this place and pool size whose two contenders were
    /// both measured. Kernel targets are judged on native runs only.
    pub fn report(
        &self,
        w: &mut dyn Write,
        place: Place,
        execution: Execution,
        pools: &[u32],
        counts: &mut Counts,
    ) {
        for t in self.targets.iter().filter(|t| t.on == place) {
            for &pool in pools {
                let (Some(ours), Some(other)) = (
                    self.get(t.bench, t.ours, pool),
                    self.get(t.bench, t.other, pool),
                ) else {
                    continue;
                };
                t.judge(w, t.want.ratio(ours, other), pool, execution, counts);
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::json::ToJson;
    use std::string::String;

    #[test]
    fn ratios_point_the_way_the_target_says() {
        let fast = Want::FasterBy(10.0);
        assert_eq!(fast.ratio(2.0, 30.0), 15.0);
        assert!(fast.met(15.0) && !fast.met(9.9));
        let within = Want::WithinOf(1.2);
        assert_eq!(within.ratio(1.5, 1.0), 1.5);
        assert!(!within.met(1.5) && within.met(1.2));
    }

    #[test]
    fn judged_per_pool_and_only_natively_in_the_kernel() {
        static ONE: &[Target] = &[
            Target {
                name: "map_range >= 15x faster than x86_64 map_to (1 GiB of 4 KiB pages)",
                bench: "map_1GiB_4KiB",
                ours: "lab-map_range",
                other: "x86_64-map_to",
                want: Want::FasterBy(15.0),
                on: Place::Host,
            },
            Target {
                name: "in-kernel map_range >= 10x faster than x86_64 map_to",
                bench: "map_1GiB_4KiB",
                ours: "lab-map_range",
                other: "x86_64-map_to",
                want: Want::FasterBy(10.0),
                on: Place::Kernel,
            },
            Target {
                name: "map_range within 2x of the store limit",
                bench: "map_1GiB_4KiB",
                ours: "lab-map_range",
                other: "memset-limit",
                want: Want::WithinOf(2.0),
                on: Place::Host,
            },
        ];
        let mut j = Judge::new(ONE);
        j.note("map_1GiB_4KiB", "lab-map_range", 4096, 1.0);
        j.note("map_1GiB_4KiB", "x86_64-map_to", 4096, 20.0);
        j.note("map_1GiB_4KiB", "lab-map_page-loop", 4096, 20.0); // no target names it
        j.note("map_1GiB_4KiB", "lab-map_range", 1024, 1.0); // its peer never measured
        let (mut out, mut c) = (String::new(), Counts::default());
        j.report(
            &mut out,
            Place::Host,
            Execution::Native,
            &[1024, 4096],
            &mut c,
        );
        // One judgement, as a record and as a line for a person (the kernel's screen).
        assert_eq!(
            out.lines().filter(|l| l.starts_with('{')).count(),
            1,
            "{out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with("# map_range >= 15x")
                && l.ends_with("pool 4096: 20.00x (want >= 15x): met")),
            "{out}"
        );
        assert!(out.contains("\"ratio\":20.000") && out.contains("\"met\":true"));
        assert!(out.contains("\"want\":\">= 15x\""), "{out}");
        assert_eq!(c.targets_missed, 0);

        let (mut out, mut c) = (String::new(), Counts::default());
        j.report(
            &mut out,
            Place::Kernel,
            Execution::Emulated,
            &[4096],
            &mut c,
        );
        assert!(out.contains("\"met\":null") && out.contains("not judged: emulated"));
        assert!(out.contains("): not judged (emulated)\n"), "{out}");
        let (mut out, mut c2) = (String::new(), Counts::default());
        j.note("map_1GiB_4KiB", "memset-limit", 4096, 0.25);
        j.report(&mut out, Place::Host, Execution::Native, &[4096], &mut c2);
        assert_eq!(
            c2.targets_missed, 1,
            "4x the store limit misses 'within 2x': {out}"
        );
        let _ = c;
    }

    #[test]
    fn job_targets_write_exactly_their_declared_fields() {
        for t in JOB_TARGETS {
            let mut s = std::string::String::new();
            t.write_json(&mut s).unwrap();
            let v: serde_json::Map<std::string::String, serde_json::Value> =
                serde_json::from_str(&s).unwrap();
            let keys: std::vec::Vec<&str> = v.keys().map(|k| k.as_str()).collect();
            assert_eq!(keys, JobTarget::FIELDS, "{s}");
        }
    }
}
