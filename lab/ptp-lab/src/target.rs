//! The speed targets, in one table keyed by benchmark and contender, each with the direction of
//! its ratio; and the judge that turns a run's measurements into `target` records. Targets live
//! in benchmarks, never in tests: a missed target is a finding, not a failed run.

use crate::paired::Paired;
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

/// What a target is judged on: the ratio in the target's direction, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured {
    /// Two estimates' ratio (criterion, contenders timed apart, a computed value).
    Estimates(f64),
    /// A paired ratio from interleaved rounds; `fault`: ours beat a limit it cannot beat.
    Paired { ratio: Paired, fault: bool },
}

impl Measured {
    pub fn ratio(self) -> f64 {
        match self {
            Measured::Estimates(r) => r,
            Measured::Paired { ratio, .. } => ratio.median,
        }
    }
}

impl Target {
    /// Write the judgement of `m` (in the target's direction) at `pool_pages`: a line for a
    /// person (the kernel shows `# ` lines on its screen) and the `target` record; a miss
    /// counts in `counts`. Kernel targets are judged on native runs only; a measurement fault
    /// is never judged met.
    pub fn judge(
        &self,
        w: &mut dyn Write,
        m: Measured,
        pool_pages: u32,
        execution: Execution,
        counts: &mut Counts,
    ) {
        let ratio = m.ratio();
        let native = self.on == Place::Host || execution == Execution::Native;
        let fault = matches!(m, Measured::Paired { fault: true, .. });
        let met = (native && !fault).then(|| self.want.met(ratio));
        if met == Some(false) {
            counts.targets_missed += 1;
        }
        let paired = match m {
            Measured::Paired { ratio, .. } => Some(ratio),
            Measured::Estimates(_) => None,
        };
        let (op, x) = self.want.text();
        let _ = write!(w, "# {}, pool {pool_pages}: {ratio:.2}x", self.name);
        if let Some(p) = paired {
            let _ = write!(w, " [{:.2}, {:.2}]", p.low, p.high);
        }
        let _ = writeln!(
            w,
            " (want {op} {x}x): {}",
            match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None if fault => "MEASUREMENT FAULT (faster than its limit)",
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
            note: if fault {
                "not judged: measurement fault (ours measured faster than a limit it cannot beat, beyond the interval)"
            } else if !native {
                "not judged: emulated (privileged instructions are emulated)"
            } else {
                ""
            },
            rounds: paired.map(|p| p.rounds),
            ci_low: paired.map(|p| p.low),
            ci_high: paired.map(|p| p.high),
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
    pairs: [Pair; SEEN],
    np: usize,
}

/// A paired ratio a target may be judged on: bench, ours, other, pool, ratio, fault.
type Pair = (&'static str, &'static str, &'static str, u32, Paired, bool);

impl Judge {
    /// A judge of `targets` (the lab's: `crate::suites::targets::TARGETS`).
    pub fn new(targets: &'static [Target]) -> Judge {
        Judge {
            targets,
            seen: [("", "", 0, 0.0); SEEN],
            n: 0,
            pairs: [(
                "",
                "",
                "",
                0,
                Paired {
                    rounds: 0,
                    median: 0.0,
                    low: 0.0,
                    high: 0.0,
                },
                false,
            ); SEEN],
            np: 0,
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

    /// Remember a paired ratio (ours / other) if a target names the pair.
    pub fn note_pair(
        &mut self,
        bench: &'static str,
        ours: &'static str,
        other: &'static str,
        pool: u32,
        ratio: Paired,
        fault: bool,
    ) {
        let wanted = self
            .targets
            .iter()
            .any(|t| t.bench == bench && t.ours == ours && t.other == other);
        if wanted && self.np < SEEN {
            self.pairs[self.np] = (bench, ours, other, pool, ratio, fault);
            self.np += 1;
        }
    }

    /// What `t` is judged on at `pool`: its paired ratio where its contenders were timed in
    /// rounds, else the ratio of their estimates; `None` if one was not measured.
    fn measured(&self, t: &Target, pool: u32) -> Option<Measured> {
        let pair = self.pairs[..self.np]
            .iter()
            .find(|p| p.0 == t.bench && p.1 == t.ours && p.2 == t.other && p.3 == pool);
        if let Some(&(.., ratio, fault)) = pair {
            let ratio = match t.want {
                Want::FasterBy(_) => ratio.inverse(),
                Want::WithinOf(_) => ratio,
            };
            return Some(Measured::Paired { ratio, fault });
        }
        let ours = self.get(t.bench, t.ours, pool)?;
        let other = self.get(t.bench, t.other, pool)?;
        Some(Measured::Estimates(t.want.ratio(ours, other)))
    }

    fn get(&self, bench: &str, imp: &str, pool: u32) -> Option<f64> {
        self.seen[..self.n]
            .iter()
            .find(|s| s.0 == bench && s.1 == imp && s.2 == pool)
            .map(|s| s.3)
    }

    /// One `target` record per target of this place and pool size whose two contenders were
    /// both measured: on their paired ratio where they were timed in rounds. Kernel targets
    /// are judged on native runs only.
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
                if let Some(m) = self.measured(t, pool) {
                    t.judge(w, m, pool, execution, counts);
                }
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
    fn paired_ratios_judge_before_estimates_and_a_beaten_limit_is_never_met() {
        static T: &[Target] = &[
            Target {
                name: "fast",
                bench: "b",
                ours: "ours",
                other: "peer",
                want: Want::FasterBy(10.0),
                on: Place::Host,
            },
            Target {
                name: "near",
                bench: "b",
                ours: "ours",
                other: "limit",
                want: Want::WithinOf(1.1),
                on: Place::Host,
            },
        ];
        let mut j = Judge::new(T);
        // Estimates say 5x and 2x (both missed); the paired ratios say 20x and 0.5x.
        j.note("b", "ours", 64, 2.0);
        j.note("b", "peer", 64, 10.0);
        j.note("b", "limit", 64, 1.0);
        let p = |median, low, high| Paired {
            rounds: 50,
            median,
            low,
            high,
        };
        j.note_pair("b", "ours", "peer", 64, p(0.05, 0.04, 0.1), false);
        j.note_pair("b", "ours", "limit", 64, p(0.5, 0.45, 0.9), true);
        j.note_pair("b", "ours", "nobody", 64, p(1.0, 1.0, 1.0), false); // no target: not kept
        assert_eq!(j.np, 2);
        let (mut out, mut c) = (String::new(), Counts::default());
        j.report(&mut out, Place::Host, Execution::Native, &[64], &mut c);
        let recs: std::vec::Vec<serde_json::Value> = out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // other/ours: the inverse of the paired median, its interval inverted.
        assert_eq!(recs[0]["ratio"], 20.0, "{out}");
        assert_eq!(
            (recs[0]["ci_low"].as_f64(), recs[0]["ci_high"].as_f64()),
            (Some(10.0), Some(25.0))
        );
        assert_eq!(
            (recs[0]["met"].as_bool(), recs[0]["rounds"].as_u64()),
            (Some(true), Some(50))
        );
        assert!(recs[1]["met"].is_null(), "a fault is not met: {out}");
        assert!(recs[1]["note"]
            .as_str()
            .unwrap()
            .contains("measurement fault"));
        assert!(
            out.contains(": MEASUREMENT FAULT (faster than its limit)\n"),
            "{out}"
        );
        assert_eq!(c.targets_missed, 0);
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
