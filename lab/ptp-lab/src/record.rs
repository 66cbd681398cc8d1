//! The lab's JSON Lines records (schema [`SCHEMA`], results/README.md): one object per line, to
//! any `core::fmt::Write` (the serial port in the kernel, stdout on the host), no allocator.
//! Each record type is declared once, with [`json_record!`](crate::json_record!): the struct, its
//! field list (which [`RECORDS`] gathers and the tools learn through `ptp-host facts`) and
//! its writer, field by field through [`ToJson`].

use crate::json::{hex, opt_hex, opt_shortest, Fixed};
pub use crate::json::{List, Obj, ToJson};
use crate::load::Load;
use crate::timing::{Id, Summary, Unit};
use crate::{json_object, json_record};
use core::fmt::{self, Write};
use vystem_ptp::flush::RoundCost;

/// Version of the record shapes below. 8: the contenders of a benchmark are timed in
/// interleaved rounds, and each pair of a contender and its reference gets a `ratio` record
/// (the median of the rounds' ratios, its interval, a fault where a limit was beaten); a
/// `target` record judged on one says so (`rounds`, `ci_low`, `ci_high`). 7: the run record names the device (`device`, added by
/// the job). 6: the `smp` record counts online-capable CPUs apart (`online_capable`). 5: the
/// `churn` record (how far each allocator gets through a changing mapping set). 4: the run
/// record lists the CPUs that came up (`cpus`), a fault names its CPU, the kernel's `smp` record
/// tells the bring-up. 3: `run` and `end` carry the machine's load (null where there is none to
/// read). 2: criterion measurements have the full summary, the run record names its timer, `cpu`
/// holds CPUID facts only (the chosen TSC frequency and its source appear once, at the top of
/// `run`), boot self-checks have a suite.
pub const SCHEMA: u32 = 8;

/// The row of [`RECORDS`] for each record type: its name, fields and kinds, from its declaration.
macro_rules! records {
    ($($t:ident),* $(,)?) => { [$(($t::TYPE, $t::FIELDS, $t::KINDS)),*] };
}

/// Every record type, its fields in the order written (`type` first, always, and not listed)
/// and what JSON each holds (the readers check it).
pub const RECORDS: &[(&str, &[&str], &[crate::json::Kind])] = &records![
    RunRecord,
    MeasurementRecord,
    CheckRecord,
    SkipRecord,
    TargetRecord,
    FaultRecord,
    PanicRecord,
    ErrorRecord,
    BootRecord,
    MemmapRecord,
    SelftestRecord,
    SmpRecord,
    EndRecord,
    ExitRecord,
    CrossoverRecord,
    ChurnRecord,
    RatioRecord,
];

/// The suite of the kernel's boot self-checks (they belong to no benchmark suite).
pub const BOOT_SUITE: &str = "boot";

json_record! {
    /// Where and how a run happened. The bench job on the host adds what only it knows (run
    /// id, accel, git commit, QEMU version and arguments).
    pub struct RunRecord<'a> = "run" {
        /// [`SCHEMA`].
        pub schema: u32,
        pub place as "where": crate::platform::Place,
        pub execution: crate::timing::Execution,
        pub calibration_ticks_per_iter: f64,
        /// The TSC frequency the run uses, and where it came from.
        pub tsc_hz: Option<u64>,
        pub tsc_hz_source: &'a str,
        /// The kernel's PIT calibration, beside the chosen value as a cross-check.
        pub tsc_hz_pit: Option<u64>,
        pub cpu: &'a crate::cpu::CpuFacts,
        pub config: &'a crate::config::Config,
        /// Which timer, and how it is set ([`crate::timing::TimerScope`]).
        pub timer: &'a dyn ToJson,
        pub fill_path: vystem_ptp::Fill,
        /// The machine's load as the run starts.
        pub load: Option<Load>,
        /// The CPUs that came up ([`crate::platform::Platform::write_cpus`]).
        pub cpus: &'a dyn ToJson,
    }
}

impl crate::json::JsonKind for vystem_ptp::Fill {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl ToJson for vystem_ptp::Fill {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.name().write_json(w)
    }
}

json_record! {
    /// One benchmark's figures, per operation (or page: `per`).
    #[derive(Debug, Clone, Copy)]
    pub struct MeasurementRecord<'a> = "measurement" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub imp as "impl": &'a str,
        pub pool_pages: u32,
        pub params: crate::json::Fields<'a>,
        pub unit: Unit,
        /// "op" or "page".
        pub per: &'a str,
        pub ops_per_sample: u64,
        pub n: usize,
        pub min: f64,
        pub p50: f64,
        pub p90: f64,
        pub p99: f64,
        pub max: f64,
        pub mean: f64,
        /// The 95 % confidence interval of the mean (criterion only).
        pub ci_low: Option<f64>,
        pub ci_high: Option<f64>,
        pub overhead: Option<u64>,
    }
}

impl<'a> MeasurementRecord<'a> {
    pub fn new(id: &Id<'a>, s: &Summary) -> Self {
        MeasurementRecord {
            suite: id.suite,
            bench: id.bench,
            imp: id.imp,
            pool_pages: id.pool_pages,
            params: id.params,
            unit: s.unit,
            per: id.per,
            ops_per_sample: s.ops_per_sample,
            n: s.n,
            min: s.min,
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            max: s.max,
            mean: s.mean,
            ci_low: s.ci.map(|c| c.0),
            ci_high: s.ci.map(|c| c.1),
            overhead: s.overhead,
        }
    }
}

/// The measurement record of `id`'s summary `s`.
pub fn measurement(w: &mut dyn Write, id: &Id<'_>, s: &Summary) -> fmt::Result {
    MeasurementRecord::new(id, s).write(w)
}

json_record! {
    /// A check: the suite and benchmark it belongs to, its name and pool size (none for the
    /// kernel's boot self-checks), whether it passed, and what it saw.
    #[derive(Debug, Clone, Copy)]
    pub struct CheckRecord<'a> = "check" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub name: &'a str,
        pub pool_pages: Option<u32>,
        pub ok: bool,
        pub detail: fmt::Arguments<'a>,
    }
}

json_record! {
    /// How far one allocator got through a churn sequence ([`crate::churn::play`]): every
    /// operation, or up to the one whose map found the pool exhausted (bump never frees, so it
    /// runs out where the bitmap goes on).
    #[derive(Debug, Clone, Copy)]
    pub struct ChurnRecord<'a> = "churn" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub pool_pages: u32,
        /// `bump` or `bitmap`.
        pub allocator: &'a str,
        /// The sequence: operations, regions live at once at most, sizes drawn from, seed.
        pub ops: u64,
        pub live_at_most: u32,
        pub sizes: u32,
        pub seed: u64,
        /// Operations done, and the one (0-based) at which the pool ran out (null: none).
        pub done: u64,
        pub exhausted_at: Option<u64>,
        /// Pool pages in use at most and at the end, root included.
        pub peak_used: u32,
        pub used_end: u32,
        /// Maps that fell back to 4 KiB pages: an emptied table that bump kept stood where a
        /// 2 MiB page would go.
        pub fallbacks_4kib: u64,
    }
}

json_record! {
    /// A benchmark that did not run here, and why.
    #[derive(Debug, Clone, Copy)]
    pub struct SkipRecord<'a> = "skip" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub pool_pages: u32,
        pub reason: &'a str,
    }
}

json_record! {
    /// A speed target judged on a run (see [`crate::target`]).
    #[derive(Debug, Clone, Copy)]
    pub struct TargetRecord<'a> = "target" {
        pub name: &'a str,
        pub bench: &'a str,
        pub ours: &'a str,
        pub other: &'a str,
        pub pool_pages: u32,
        pub ratio: f64,
        /// How `ratio` is formed, e.g. "other/ours (higher is better)".
        pub direction: &'a str,
        pub want: fmt::Arguments<'a>,
        /// None: not judged here (the note says why).
        pub met: Option<bool>,
        pub note: &'a str,
        /// Judged on a paired ratio (its rounds, and its 95 % interval in the direction of
        /// `ratio`); null: on the ratio of two estimates (criterion, or timed apart).
        pub rounds: Option<usize>,
        pub ci_low: Option<f64> => opt_shortest,
        pub ci_high: Option<f64> => opt_shortest,
    }
}

json_record! {
    /// A paired ratio ([`crate::paired`]): a contender against a reference of its benchmark
    /// (a peer, or a limit it cannot beat), from the rounds in which both were timed.
    #[derive(Debug, Clone, Copy)]
    pub struct RatioRecord<'a> = "ratio" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub pool_pages: u32,
        pub ours: &'a str,
        pub other: &'a str,
        /// `peer` or `limit`.
        pub reference: &'a str,
        pub rounds: usize,
        /// ours / other: the median of the rounds' ratios, and its 95 % interval.
        pub median: f64 => crate::json::shortest,
        pub ci_low: f64 => crate::json::shortest,
        pub ci_high: f64 => crate::json::shortest,
        pub method: &'a str,
        /// Ours measured faster than a limit it cannot beat, beyond the interval: a measurement
        /// fault, never a figure to quote.
        pub fault: bool,
    }
}

json_record! {
    /// An unexpected CPU exception (the run ends).
    #[derive(Debug, Clone, Copy)]
    pub struct FaultRecord<'a> = "fault" {
        /// The CPU it happened on (0: the boot CPU).
        pub cpu: u32,
        pub vector: u8,
        pub name: &'a str,
        pub error_code: u64 => hex,
        pub rip: u64 => hex,
        pub cr2: u64 => hex,
        pub rsp: u64 => hex,
        pub bench: &'a str,
    }
}

json_record! {
    /// A panic: its message, where (`file:line:col`), and what was running.
    pub struct PanicRecord<'a> = "panic" {
        pub msg: fmt::Arguments<'a>,
        pub location: Option<&'a dyn fmt::Display>,
        pub bench: &'a str,
    }
}

json_record! {
    /// The run was refused or could not start: `kind` names what (a bad command line, pools
    /// that do not fit, unreadable boot information), `msg` names the bad value.
    #[derive(Debug, Clone, Copy)]
    pub struct ErrorRecord<'a> = "error" {
        pub kind: &'a str,
        pub msg: fmt::Arguments<'a>,
    }
}

json_record! {
    /// What the boot loader handed over (kernel only).
    #[derive(Debug, Clone, Copy)]
    pub struct BootRecord<'a> = "boot" {
        pub protocol: &'a str,
        pub cmdline: &'a str,
        pub cmdline_truncated: bool,
        pub free_ram_bytes: u64,
        pub free_regions: usize,
        pub kernel_start: u64 => hex,
        pub kernel_end: u64 => hex,
        pub boot_info: u64 => hex,
        pub rsdp: Option<u64> => opt_hex,
    }
}

json_record! {
    /// The firmware memory map and the free RAM left.
    pub struct MemmapRecord<'a> = "memmap" {
        pub truncated: bool,
        /// [`MemEntry`] each.
        pub entries: &'a dyn ToJson,
        /// [`FreeRange`] each.
        pub free: &'a dyn ToJson,
        pub free_truncated: bool,
    }
}

json_object! {
    /// One entry of the firmware memory map.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MemEntry {
        pub base: u64 => hex,
        pub len: u64 => hex,
        /// The E820 type.
        pub kind as "type": u32,
    }
}

json_object! {
    /// Free RAM, `start..end`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FreeRange {
        pub start: u64 => hex,
        pub end: u64 => hex,
    }
}

json_record! {
    /// The kernel's boot self-checks: how many passed and failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SelftestRecord = "selftest" {
        pub passed: u32,
        pub failed: u32,
    }
}

json_object! {
    /// One CPU of the bring-up: its index (0: the boot CPU), its APIC ID, whether it came up,
    /// its TSC against the boot CPU's (ticks, positive = ahead), and what happened, in words.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CpuStart<'a> {
        pub cpu: u32,
        pub apic_id: u32,
        pub up: bool,
        pub tsc_offset_ticks: Option<i64>,
        pub detail: &'a str,
    }
}

json_record! {
    /// How the kernel found and started the CPUs: `source` of the list (`madt`, or `none`
    /// with the reason in the boot CPU's detail), `apic` mode (`x2apic`, `xapic`), how many the
    /// firmware listed enabled, how many it left out (beyond the lab's maximum), how many it
    /// listed online capable but not enabled (not started), each CPU.
    #[derive(Debug, Clone, Copy)]
    pub struct SmpRecord<'a> = "smp" {
        pub source: &'a str,
        pub apic: &'a str,
        pub found: u32,
        pub left_out: u32,
        pub online_capable: u32,
        pub cpus: &'a [CpuStart<'a>],
    }
}

/// Counts of what a run printed, for its `end` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub measurements: u32,
    pub checks: u32,
    pub checks_failed: u32,
    pub skips: u32,
    pub targets_missed: u32,
}

json_record! {
    /// How a run ended: its status, the [`Counts`], the machine's load as it ends
    /// ([`crate::platform::Platform::load`]).
    #[derive(Debug, Clone, Copy)]
    pub struct EndRecord<'a> = "end" {
        pub status: &'a str,
        pub measurements: u32,
        pub checks: u32,
        pub checks_failed: u32,
        pub skips: u32,
        pub targets_missed: u32,
        pub load: Option<Load>,
    }
}

/// The end record of a run that printed `c`.
pub fn end<'a>(status: &'a str, c: &Counts, load: Option<Load>) -> EndRecord<'a> {
    EndRecord {
        status,
        measurements: c.measurements,
        checks: c.checks,
        checks_failed: c.checks_failed,
        skips: c.skips,
        targets_missed: c.targets_missed,
        load,
    }
}

json_record! {
    /// The kernel's last words: whether everything passed, the exit status QEMU will report,
    /// and how deep the boot stack went (`None` where not measured).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ExitRecord = "exit" {
        pub ok: bool,
        pub qemu_status: i32,
        pub boot_stack_used_bytes: Option<u64>,
    }
}

json_record! {
    /// Where flushing everything starts to beat flushing page by page, on this CPU.
    #[derive(Debug, Clone, Copy)]
    pub struct CrossoverRecord<'a> = "crossover" {
        pub suite: &'a str,
        pub bench: &'a str,
        pub pool_pages: u32,
        pub page_size: &'a str,
        /// The two strategies compared, as named in their measurements.
        pub per_page: &'a str,
        pub full: &'a str,
        pub unit: &'a str,
        /// The page counts measured, and the cost of one flush + refill round at each, both
        /// strategies.
        pub sizes: Column<'a>,
        pub per_page_costs: Column<'a>,
        pub full_costs: Column<'a>,
        /// The smallest page count from which the full flush stays cheaper (None: never here).
        pub n_star: Option<u64>,
        /// The ceiling that calls for: flush page by page up to it.
        pub ceiling: u64,
        /// Fixed ceilings (Linux's 33 and neighbours) and what each costs over the sizes
        /// measured against always choosing the cheaper strategy (sum of the extra per round).
        pub fixed_ceilings: Regrets<'a>,
        pub calibrated_ceiling: u64,
        /// TSC ticks `vystem_ptp::flush::calibrate` took.
        pub calibration_ticks: u64,
        /// The calibrated policy's worst cost over the best choice, at any size measured (1.0
        /// = always the best).
        pub calibrated_worst_excess: f64,
    }
}

/// One column of a crossover's round costs, as a list.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a>(&'a [RoundCost], fn(&RoundCost) -> Cost);

/// A column's value: a page count, or ticks with 1 decimal.
#[derive(Debug, Clone, Copy)]
enum Cost {
    Pages(u64),
    Ticks(f64),
}

impl ToJson for Cost {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        match *self {
            Cost::Pages(n) => n.write_json(w),
            Cost::Ticks(t) => Fixed::<1>(t).write_json(w),
        }
    }
}

impl<'a> Column<'a> {
    pub fn sizes(costs: &'a [RoundCost]) -> Self {
        Column(costs, |c| Cost::Pages(c.pages))
    }
    pub fn per_page(costs: &'a [RoundCost]) -> Self {
        Column(costs, |c| Cost::Ticks(c.per_page))
    }
    pub fn full(costs: &'a [RoundCost]) -> Self {
        Column(costs, |c| Cost::Ticks(c.full))
    }
}

impl crate::json::JsonKind for Column<'_> {
    const KIND: crate::json::Kind = crate::json::Kind::LIST;
}

impl ToJson for Column<'_> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.0
            .iter()
            .fold(List::open(w), |l, c| l.item(&(self.1)(c)))
            .close()
    }
}

/// Fixed ceilings and their regret: `{"33":{"regret":1.5},...}`.
#[derive(Debug, Clone, Copy)]
pub struct Regrets<'a>(pub &'a [(u64, f64)]);

json_object! {
    /// What one fixed ceiling costs (the value under its ceiling's key in [`Regrets`]).
    #[derive(Debug, Clone, Copy)]
    struct Regret {
        regret: Fixed<1>,
    }
}

impl crate::json::JsonKind for Regrets<'_> {
    const KIND: crate::json::Kind = crate::json::Kind::OBJECT;
}

impl ToJson for Regrets<'_> {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.0
            .iter()
            .fold(Obj::open(w), |o, &(ceiling, regret)| {
                let mut key = crate::fixedstr::FixedStr::<20>::new();
                let _ = write!(key, "{ceiling}");
                o.field(
                    key.as_str(),
                    &Regret {
                        regret: Fixed(regret),
                    },
                )
            })
            .close()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::json::Items;
    use std::string::String;
    use std::vec::Vec;

    fn summary() -> Summary {
        Summary {
            unit: Unit::Ticks,
            n: 2,
            ops_per_sample: 4,
            min: 1.0,
            p50: 1.5,
            p90: 2.0,
            p99: 2.0,
            max: 2.0,
            mean: 1.5,
            ci: None,
            overhead: Some(30),
        }
    }

    #[test]
    fn records_are_one_json_object_per_line() {
        let mut out = String::new();
        let id = Id {
            suite: "alloc",
            bench: "bump_alloc",
            imp: "lab-bump",
            pool_pages: 64,
            per: "op",
            params: crate::json::Fields::EMPTY,
        };
        measurement(&mut out, &id, &summary()).unwrap();
        CheckRecord {
            suite: "ptp",
            bench: "ptp_build",
            name: "alias",
            pool_pages: Some(64),
            ok: false,
            detail: format_args!("read {:#x}, \"want\" 0x5a", 0),
        }
        .write(&mut out)
        .unwrap();
        Obj::new(&mut out, "x")
            .field("nan", &f64::NAN)
            .field("none", &None::<&str>)
            .end()
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "{\"type\":\"measurement\",\"suite\":\"alloc\",\"bench\":\"bump_alloc\",\"impl\":\"lab-bump\",\"pool_pages\":64,\"params\":{},\"unit\":\"ticks\",\"per\":\"op\",\"ops_per_sample\":4,\"n\":2,\"min\":1.000,\"p50\":1.500,\"p90\":2.000,\"p99\":2.000,\"max\":2.000,\"mean\":1.500,\"ci_low\":null,\"ci_high\":null,\"overhead\":30}");
        assert_eq!(lines[1], "{\"type\":\"check\",\"suite\":\"ptp\",\"bench\":\"ptp_build\",\"name\":\"alias\",\"pool_pages\":64,\"ok\":false,\"detail\":\"read 0x0, \\\"want\\\" 0x5a\"}");
        assert_eq!(lines[2], "{\"type\":\"x\",\"nan\":null,\"none\":null}");
    }

    /// The top-level keys of a one-line JSON object, in order (enough of a parser for our own
    /// output: strings never hold an unescaped quote, nesting is tracked).
    fn keys(line: &str) -> Vec<String> {
        let (mut keys, mut depth, mut in_str, mut esc, mut cur) =
            (Vec::new(), 0, false, false, String::new());
        let mut expect_key = false;
        for c in line.chars() {
            if in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                    if expect_key {
                        keys.push(core::mem::take(&mut cur));
                        expect_key = false;
                    }
                } else if expect_key {
                    cur.push(c);
                }
                continue;
            }
            match c {
                '"' => {
                    in_str = true;
                }
                '{' | '[' => {
                    depth += 1;
                    expect_key = depth == 1 && c == '{';
                }
                '}' | ']' => depth -= 1,
                ',' if depth == 1 => expect_key = true,
                ':' => expect_key = false,
                _ => {}
            }
        }
        keys
    }

    fn declared(ty: &str) -> Vec<String> {
        let (_, fields, _) = RECORDS.iter().find(|(t, _, _)| *t == ty).unwrap();
        core::iter::once("type")
            .chain(fields.iter().copied())
            .map(String::from)
            .collect()
    }

    /// The keys of one nested object as written, against its declaration.
    fn assert_writes_its_fields(v: &dyn ToJson, fields: &[&str]) {
        let mut s = String::from("{\"type\":\"x\",\"v\":");
        v.write_json(&mut s).unwrap();
        s.push('}');
        let inner = &s["{\"type\":\"x\",\"v\":".len()..s.len() - 1];
        assert_eq!(keys(inner), fields, "{inner}");
    }

    #[test]
    fn nested_objects_write_exactly_their_declared_fields() {
        use crate::cpu::CpuFacts;
        let cpu = CpuFacts::detect();
        assert_writes_its_fields(&cpu, CpuFacts::FIELDS);
        let load = crate::load::Load::parse("0.1 0.2 0.3 1/2 3").unwrap();
        assert_writes_its_fields(&load, crate::load::Load::FIELDS);
        let c = CpuStart {
            cpu: 0,
            apic_id: 0,
            up: true,
            tsc_offset_ticks: None,
            detail: "",
        };
        assert_writes_its_fields(&c, CpuStart::FIELDS);
        let e = MemEntry {
            base: 0,
            len: 1,
            kind: 1,
        };
        assert_writes_its_fields(&e, MemEntry::FIELDS);
        assert_writes_its_fields(&FreeRange { start: 0, end: 1 }, FreeRange::FIELDS);
    }

    #[test]
    fn values_write_as_the_tools_read_them() {
        let w = |v: &dyn ToJson| {
            let mut s = String::new();
            v.write_json(&mut s).unwrap();
            s
        };
        assert_eq!(w(&1.0f64), "1.000");
        assert_eq!(w(&f64::INFINITY), "null");
        assert_eq!(w(&Fixed::<1>(2.25)), "2.2");
        assert_eq!(w(&crate::json::Shortest(60.0)), "60");
        assert_eq!(w(&Some(crate::json::Hex(255))), "\"0xff\"");
        assert_eq!(w(&None::<u64>), "null");
        assert_eq!(w(&&[1u32, 2][..]), "[1,2]");
        assert_eq!(w(&&[0u8; 0][..]), "[]");
        assert_eq!(w(&format_args!("a\"{}", '\n')), "\"a\\\"\\n\"");
        assert_eq!(
            w(&crate::json::Raw(format_args!("{{\"a\":1}}"))),
            "{\"a\":1}"
        );
        let mut it = [1u32, 2].into_iter();
        let items = Items::new(&mut it);
        assert_eq!((w(&items), w(&items)), ("[1,2]".into(), "[]".into()));
        assert_eq!(
            w(&crate::json::With(|w: &mut dyn Write| Obj::open(w).close())),
            "{}"
        );
    }

    #[test]
    fn every_writer_writes_exactly_its_declared_fields() {
        use crate::config::Config;
        use crate::cpu::CpuFacts;
        use crate::platform::Place;
        use crate::timing::Execution;
        let mut lines: Vec<(&str, String)> = Vec::new();
        let mut w = |ty: &'static str, f: &dyn Fn(&mut String) -> fmt::Result| {
            let mut s = String::new();
            f(&mut s).unwrap();
            assert!(
                s.ends_with("}\n") && s.matches('\n').count() == 1,
                "{ty}: {s}"
            );
            lines.push((ty, s));
        };
        let id = Id {
            suite: "map",
            bench: "b",
            imp: "i",
            pool_pages: 64,
            per: "page",
            params: crate::params! { "a": [1u32, 2] },
        };
        let cpu = CpuFacts::detect();
        let cfg = Config::default();
        w("run", &|s| {
            RunRecord {
                schema: SCHEMA,
                place: Place::Host,
                execution: Execution::Native,
                calibration_ticks_per_iter: 1.0,
                tsc_hz: Some(1),
                tsc_hz_source: "x",
                tsc_hz_pit: None,
                cpu: &cpu,
                config: &cfg,
                timer: &crate::json::With(|w: &mut dyn Write| w.write_str("{}")),
                fill_path: vystem_ptp::Fill::SSE2,
                load: crate::load::Load::parse("0.1 0.2 0.3 1/2 3"),
                cpus: &None::<u32>,
            }
            .write(s)
        });
        w("measurement", &|s| measurement(s, &id, &summary()));
        w("check", &|s| {
            CheckRecord {
                suite: "boot",
                bench: "selftest",
                name: "n",
                pool_pages: None,
                ok: true,
                detail: format_args!("d"),
            }
            .write(s)
        });
        w("skip", &|s| {
            SkipRecord {
                suite: "map",
                bench: "b",
                pool_pages: 64,
                reason: "why",
            }
            .write(s)
        });
        w("target", &|s| {
            TargetRecord {
                name: "t",
                bench: "b",
                ours: "o",
                other: "p",
                pool_pages: 64,
                ratio: 2.0,
                direction: "other/ours",
                want: format_args!(">= 2x"),
                met: None,
                note: "",
                rounds: Some(9),
                ci_low: Some(1.5),
                ci_high: None,
            }
            .write(s)
        });
        w("fault", &|s| {
            FaultRecord {
                cpu: 1,
                vector: 14,
                name: "#PF",
                error_code: 0,
                rip: 1,
                cr2: 2,
                rsp: 3,
                bench: "b",
            }
            .write(s)
        });
        w("panic", &|s| {
            PanicRecord {
                msg: format_args!("m"),
                location: None,
                bench: "b",
            }
            .write(s)
        });
        w("error", &|s| {
            ErrorRecord {
                kind: "bad_cmdline",
                msg: format_args!("m"),
            }
            .write(s)
        });
        w("boot", &|s| {
            BootRecord {
                protocol: "pvh",
                cmdline: "",
                cmdline_truncated: false,
                free_ram_bytes: 0,
                free_regions: 0,
                kernel_start: 0,
                kernel_end: 0,
                boot_info: 0,
                rsdp: None,
            }
            .write(s)
        });
        w("memmap", &|s| {
            let e = |base, len, kind| MemEntry { base, len, kind };
            let mut entries = [e(0, 1, 1), e(2, 3, 2)].into_iter();
            let mut free = [FreeRange { start: 0, end: 1 }].into_iter();
            MemmapRecord {
                truncated: false,
                entries: &Items::new(&mut entries),
                free: &Items::new(&mut free),
                free_truncated: false,
            }
            .write(s)
        });
        w("selftest", &|s| {
            SelftestRecord {
                passed: 1,
                failed: 0,
            }
            .write(s)
        });
        w("smp", &|s| {
            let c = CpuStart {
                cpu: 1,
                apic_id: 1,
                up: false,
                tsc_offset_ticks: Some(-3),
                detail: "no \"answer\"",
            };
            SmpRecord {
                source: "madt",
                apic: "x2apic",
                found: 2,
                left_out: 0,
                online_capable: 3,
                cpus: &[c, CpuStart { up: true, ..c }],
            }
            .write(s)
        });
        w("end", &|s| end("ok", &Counts::default(), None).write(s));
        w("exit", &|s| {
            ExitRecord {
                ok: true,
                qemu_status: 33,
                boot_stack_used_bytes: Some(4096),
            }
            .write(s)
        });
        let costs = [vystem_ptp::flush::RoundCost {
            pages: 1,
            per_page: 2.0,
            full: 3.0,
        }];
        w("crossover", &|s| {
            CrossoverRecord {
                suite: "tlb",
                bench: "tlb_crossover",
                pool_pages: 64,
                page_size: "4KiB",
                per_page: "invlpg",
                full: "cr3-reload",
                unit: "ticks",
                sizes: Column::sizes(&costs),
                per_page_costs: Column::per_page(&costs),
                full_costs: Column::full(&costs),
                n_star: None,
                ceiling: 1,
                fixed_ceilings: Regrets(&[(33, 0.0), (64, 1.25)]),
                calibrated_ceiling: 1,
                calibration_ticks: 5,
                calibrated_worst_excess: 1.0,
            }
            .write(s)
        });
        w("churn", &|s| {
            ChurnRecord {
                suite: "churn",
                bench: "churn_mixed",
                pool_pages: 512,
                allocator: "bump",
                ops: 256,
                live_at_most: 32,
                sizes: 10,
                seed: 1,
                done: 100,
                exhausted_at: Some(100),
                peak_used: 512,
                used_end: 512,
                fallbacks_4kib: 2,
            }
            .write(s)
        });
        w("ratio", &|s| {
            RatioRecord {
                suite: "map",
                bench: "b",
                pool_pages: 64,
                ours: "o",
                other: "l",
                reference: "limit",
                rounds: 9,
                median: 0.9,
                ci_low: 0.85,
                ci_high: 0.95,
                method: "m",
                fault: true,
            }
            .write(s)
        });
        let written: Vec<&str> = lines.iter().map(|(t, _)| *t).collect();
        let all: Vec<&str> = RECORDS.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(written, all, "one writer per declared record type");
        for (ty, line) in &lines {
            assert_eq!(keys(line), declared(ty), "{ty}: {line}");
        }
        // The nested parts, byte for byte as the format strings before the declarations wrote them.
        let line = |ty: &str| lines.iter().find(|(t, _)| *t == ty).unwrap().1.trim_end();
        assert_eq!(
            line("memmap"),
            r#"{"type":"memmap","truncated":false,"entries":[{"base":"0x0","len":"0x1","type":1},{"base":"0x2","len":"0x3","type":2}],"free":[{"start":"0x0","end":"0x1"}],"free_truncated":false}"#
        );
        assert_eq!(
            line("smp"),
            r#"{"type":"smp","source":"madt","apic":"x2apic","found":2,"left_out":0,"online_capable":3,"cpus":[{"cpu":1,"apic_id":1,"up":false,"tsc_offset_ticks":-3,"detail":"no \"answer\""},{"cpu":1,"apic_id":1,"up":true,"tsc_offset_ticks":-3,"detail":"no \"answer\""}]}"#
        );
        assert_eq!(
            line("crossover"),
            r#"{"type":"crossover","suite":"tlb","bench":"tlb_crossover","pool_pages":64,"page_size":"4KiB","per_page":"invlpg","full":"cr3-reload","unit":"ticks","sizes":[1],"per_page_costs":[2.0],"full_costs":[3.0],"n_star":null,"ceiling":1,"fixed_ceilings":{"33":{"regret":0.0},"64":{"regret":1.2}},"calibrated_ceiling":1,"calibration_ticks":5,"calibrated_worst_excess":1.000}"#
        );
        assert_eq!(
            line("boot"),
            r#"{"type":"boot","protocol":"pvh","cmdline":"","cmdline_truncated":false,"free_ram_bytes":0,"free_regions":0,"kernel_start":"0x0","kernel_end":"0x0","boot_info":"0x0","rsdp":null}"#
        );
        assert_eq!(
            line("fault"),
            r##"{"type":"fault","cpu":1,"vector":14,"name":"#PF","error_code":"0x0","rip":"0x1","cr2":"0x2","rsp":"0x3","bench":"b"}"##
        );
        assert_eq!(
            line("exit"),
            r#"{"type":"exit","ok":true,"qemu_status":33,"boot_stack_used_bytes":4096}"#
        );
        assert!(line("run").contains(r#","config":{"mode":"bench","suites":["alloc","map","ptp","tlb","layouts","churn"],"pool_pages":[4096],"quick":false,"seed":24301},"timer":{},"fill_path":"sse2","load":{"avg_1m":0.10,"avg_5m":0.20,"avg_15m":0.30,"runnable":1},"cpus":null}"#), "{}", line("run"));
    }
}
