//! The facts the Python tools need and Rust owns, as one JSON object (`ptp-host facts`): record
//! shapes, names of places, executions, suites, modes and benchmarks, pool limits, exit codes,
//! speed targets. Python asks for them instead of restating them; its tests check it uses them.

use crate::config::{Mode, Suite, DEFAULT_SEED, KEYS, MAX_POOLS};
use crate::exit::{ExitCode, DEBUG_EXIT_PORT};
use crate::json::Str;
use crate::platform::Place;
use crate::record::{List, Obj, BOOT_SUITE, RECORDS, SCHEMA};
use crate::suites::{BENCHES, HOST_ONLY};
use crate::target::{Target, JOB_TARGETS, TARGETS, VALUE_TARGETS};
use crate::timing::Execution;
use core::fmt::{self, Write};
use vystem_ptp::pool::{MAX_POOL_PAGES, MIN_POOL_PAGES, STANDARD_POOL_PAGES};

fn names<T: Copy>(w: &mut dyn Write, items: &[T], name: impl Fn(T) -> &'static str) -> fmt::Result {
    let mut l = List::open(w)?;
    for &x in items {
        l.item(format_args!("{}", Str(name(x))))?;
    }
    l.close()
}

fn targets<'a>(w: &mut dyn Write, list: impl Iterator<Item = &'a Target>) -> fmt::Result {
    let mut l = List::open(w)?;
    for t in list {
        let (op, x) = t.want.text();
        l.item(format_args!(
            "{{\"name\":{},\"bench\":{},\"ours\":{},\"other\":{},\"want\":\"{op} {x}x\",\"direction\":{},\"on\":{}}}",
            Str(t.name),
            Str(t.bench),
            Str(t.ours),
            Str(t.other),
            Str(t.want.direction()),
            Str(t.on.name())
        ))?;
    }
    l.close()
}

pub fn write(w: &mut dyn Write) -> fmt::Result {
    Obj::new(w, "facts")
        .num("schema", SCHEMA as u64)
        .with("records", |w| {
            w.write_char('{')?;
            for (i, (ty, fields)) in RECORDS.iter().enumerate() {
                write!(w, "{}{}:", if i == 0 { "" } else { "," }, Str(ty))?;
                names(w, fields, |f| f)?;
            }
            w.write_char('}')
        })
        .str("boot_suite", BOOT_SUITE)
        .with("where", |w| names(w, &Place::ALL, Place::name))
        .with("execution", |w| {
            names(w, &[Execution::Native, Execution::Emulated], Execution::name)
        })
        .float("emulated_above_ticks_per_iter", Execution::EMULATED_ABOVE)
        .with("suites", |w| names(w, &Suite::ALL, Suite::name))
        .with("modes", |w| names(w, &Mode::ALL, Mode::name))
        .with("config_keys", |w| names(w, &KEYS, |k| k))
        .num("default_seed", DEFAULT_SEED)
        .num("max_cpus", crate::acpi::MAX_CPUS as u64)
        .with("benches", |w| {
            let mut l = List::open(w)?;
            for b in BENCHES {
                l.item(format_args!(
                    "{{\"name\":{},\"suite\":{}}}",
                    Str(b.name),
                    Str(b.suite.name())
                ))?;
            }
            l.close()
        })
        .with("host_only", |w| {
            let mut l = List::open(w)?;
            for (contender, why) in HOST_ONLY {
                l.item(format_args!(
                    "{{\"contender\":{},\"reason\":{}}}",
                    Str(contender),
                    Str(why)
                ))?;
            }
            l.close()
        })
        .raw(
            "pool_pages",
            format_args!(
                "{{\"min\":{MIN_POOL_PAGES},\"max\":{MAX_POOL_PAGES},\"standard\":{STANDARD_POOL_PAGES},\"max_pools\":{MAX_POOLS}}}"
            ),
        )
        .with("exit", |w| {
            write!(w, "{{\"debug_exit_port\":{DEBUG_EXIT_PORT},\"kernel\":{{")?;
            for (i, e) in ExitCode::ALL.iter().enumerate() {
                write!(
                    w,
                    "{}{}:{{\"port_value\":{},\"qemu_status\":{}}}",
                    if i == 0 { "" } else { "," },
                    Str(e.name()),
                    e.port_value(),
                    e.qemu_status()
                )?;
            }
            w.write_str("},\"host\":{")?;
            for (i, e) in ExitCode::ALL.iter().enumerate() {
                write!(
                    w,
                    "{}{}:{}",
                    if i == 0 { "" } else { "," },
                    Str(e.name()),
                    e.host_status()
                )?;
            }
            w.write_str("}}")
        })
        .with("targets", |w| targets(w, TARGETS.iter()))
        .with("value_targets", |w| targets(w, VALUE_TARGETS.iter().copied()))
        .with("job_targets", |w| {
            let mut l = List::open(w)?;
            for t in JOB_TARGETS {
                let mut accels = crate::fixedstr::FixedStr::<64>::new();
                for (i, a) in t.accels.iter().enumerate() {
                    let _ = write!(accels, "{}{}", if i == 0 { "" } else { "," }, Str(a));
                }
                l.item(format_args!(
                    "{{\"name\":{},\"field\":{},\"at_most_s\":{},\"accels\":[{accels}],\"quick\":{},\"mode\":{}}}",
                    Str(t.name),
                    Str(t.field),
                    t.at_most_s,
                    OptDisplay(t.quick),
                    OptStr(t.mode.map(Mode::name))
                ))?;
            }
            l.close()
        })
        .end()
}

struct OptStr(Option<&'static str>);
impl fmt::Display for OptStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{}", Str(s)),
            None => f.write_str("null"),
        }
    }
}

struct OptDisplay<T>(Option<T>);
impl<T: fmt::Display> fmt::Display for OptDisplay<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}
