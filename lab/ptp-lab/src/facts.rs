//! The facts the Python tools need and Rust owns, as one JSON object (`ptp-host facts`): record
//! shapes, names of places, executions, suites, modes and benchmarks, pool limits, exit codes,
//! speed targets. Python asks for them instead of restating them; its tests check it uses them.

use crate::case::{self, Outcome};
use crate::config::{key, Mode, Suite, DEFAULT_SEED, MAX_POOLS, SWEEP};
use crate::exit::{ExitCode, DEBUG_EXIT_PORT, HALTED};
use crate::json::{List, Obj, ToJson, With};
use crate::json_object;
use crate::options::{self, Kind};
use crate::platform::Place;
use crate::record::{BOOT_SUITE, RECORDS, SCHEMA};
use crate::runner::{Door, RUNNERS};
use crate::suites::targets::{TARGETS, VALUE_TARGETS};
use crate::suites::{benches, roles, HOST_ONLY};
use crate::target::{Target, JOB_TARGETS};
use crate::timing::Execution;
use core::fmt::{self, Write};
use vystem_ptp::pool::{MAX_POOL_PAGES, MIN_POOL_PAGES, STANDARD_POOL_PAGES};

json_object! {
    /// A speed target as the tools see it: what it wants, in words.
    struct TargetFact<'a> {
        name: &'a str,
        bench: &'a str,
        ours: &'a str,
        other: &'a str,
        want: fmt::Arguments<'a>,
        direction: &'a str,
        on: Place,
    }
}

json_object! {
    struct BenchFact<'a> {
        name: &'a str,
        suite: Suite,
    }
}

json_object! {
    struct HostOnlyFact<'a> {
        contender: &'a str,
        reason: &'a str,
    }
}

json_object! {
    struct PoolPagesFact {
        min: u32,
        max: u32,
        standard: u32,
        max_pools: usize,
        sweep: [u32; SWEEP.len()],
    }
}

/// The options table ([`crate::options`]), a row an object.
fn options() -> impl ToJson {
    With(|w: &mut dyn Write| {
        options::all()
            .fold(List::open(w), |l, o| {
                let (min, max, choices): (Option<u64>, Option<u64>, &[&str]) = match o.kind {
                    Kind::Number { min, max } => (Some(min), Some(max), &[]),
                    Kind::Choice(c) => (None, None, c),
                    _ => (None, None, &[]),
                };
                l.item(&With(move |w: &mut dyn Write| {
                    Obj::open(w)
                        .field("name", o.name)
                        .field("flag", o.flag)
                        .field("word", &o.word)
                        .field("kind", o.kind.name())
                        .field("min", &min)
                        .field("max", &max)
                        .field("choices", choices)
                        .field("metavar", o.metavar)
                        .field("default", o.default)
                        .field("help", o.help)
                        .field(
                            "on",
                            &With(move |w: &mut dyn Write| {
                                o.on().fold(List::open(w), |l, r| l.item(r.name())).close()
                            }),
                        )
                        .field("hidden", &o.hidden)
                        .close()
                }))
            })
            .close()
    })
}

/// Names by role ([`crate::suites::roles`]): `{"benches": {role: name}, "contenders": ...}`.
fn roles() -> impl ToJson {
    let by_role = |list: &'static [roles::Role]| {
        With(move |w: &mut dyn Write| {
            list.iter()
                .fold(Obj::open(w), |o, r| o.field(r.role, r.name))
                .close()
        })
    };
    With(move |w: &mut dyn Write| {
        Obj::open(w)
            .field("benches", &by_role(roles::BENCHES))
            .field("contenders", &by_role(roles::CONTENDERS))
            .close()
    })
}

/// The runners table ([`crate::runner`]), a row an object.
fn runners() -> impl ToJson {
    With(|w: &mut dyn Write| {
        RUNNERS
            .iter()
            .fold(List::open(w), |l, r| {
                l.item(&With(move |w: &mut dyn Write| {
                    Obj::open(w)
                        .field("name", r.runner.name())
                        .field("door", r.door.name())
                        .field("script", r.door.script())
                        .field("title", r.title)
                        .field("needs", r.needs)
                        .field(
                            "fixed",
                            &With(|w: &mut dyn Write| {
                                r.fixed
                                    .iter()
                                    .fold(Obj::open(w), |o, (k, v)| o.field(k, *v))
                                    .close()
                            }),
                        )
                        .field("fixed_why", r.fixed_why)
                        .field("kernel", &r.kernel)
                        .close()
                }))
            })
            .close()
    })
}

json_object! {
    /// How the kernel reports an exit code through QEMU's debug-exit port.
    struct KernelExitFact {
        port_value: u32,
        qemu_status: i32,
    }
}

/// The names of `items`, as a list.
fn names<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> impl ToJson + '_ {
    With(move |w: &mut dyn Write| {
        items
            .iter()
            .fold(List::open(w), |l, &x| l.item(name(x)))
            .close()
    })
}

fn targets<'a>(list: impl Iterator<Item = &'a Target> + Clone) -> impl ToJson {
    With(move |w: &mut dyn Write| {
        list.clone()
            .fold(List::open(w), |l, t| {
                let (op, x) = t.want.text();
                l.item(&TargetFact {
                    name: t.name,
                    bench: t.bench,
                    ours: t.ours,
                    other: t.other,
                    want: format_args!("{op} {x}x"),
                    direction: t.want.direction(),
                    on: t.on,
                })
            })
            .close()
    })
}

/// An object with one key per exit code.
fn per_exit_code<T: ToJson>(value: impl Fn(ExitCode) -> T) -> impl ToJson {
    With(move |w: &mut dyn Write| {
        ExitCode::ALL
            .iter()
            .fold(Obj::open(w), |o, &e| o.field(e.name(), &value(e)))
            .close()
    })
}

/// Per record type, per field, its kind: `string`, `integer`, `number`, `bool`, `object`,
/// `list` or `any`, with `?` where it may be null.
fn record_kinds() -> impl ToJson {
    With(|w: &mut dyn Write| {
        RECORDS
            .iter()
            .fold(Obj::open(w), |o, (ty, fields, kinds)| {
                o.field(
                    ty,
                    &With(|w: &mut dyn Write| {
                        fields
                            .iter()
                            .zip(kinds.iter())
                            .fold(Obj::open(w), |o, (f, k)| o.field(f, k))
                            .close()
                    }),
                )
            })
            .close()
    })
}

/// The shape of this schema version's records, as results/schema/vN.json holds it
/// (`ptp-host schema`): the version, and per record type its fields in order with their kinds.
pub fn write_schema(w: &mut dyn Write) -> fmt::Result {
    Obj::open(w)
        .field("schema", &SCHEMA)
        .field("records", &record_kinds())
        .close()?;
    writeln!(w)
}

pub fn write(w: &mut dyn Write) -> fmt::Result {
    let records = With(|w: &mut dyn Write| {
        RECORDS
            .iter()
            .fold(Obj::open(w), |o, (ty, fields, _)| o.field(ty, *fields))
            .close()
    });
    let kinds = record_kinds();
    let exit = With(|w: &mut dyn Write| {
        Obj::open(w)
            .field("debug_exit_port", &DEBUG_EXIT_PORT)
            .field(
                "kernel",
                &per_exit_code(|e| KernelExitFact {
                    port_value: e.port_value(),
                    qemu_status: e.qemu_status(),
                }),
            )
            .field("host", &per_exit_code(ExitCode::host_status))
            .close()
    });
    // How a harness that reads lines finds the test cases (crate::case).
    let case_line = With(|w: &mut dyn Write| {
        Obj::open(w)
            .field("prefix", case::PREFIX)
            .field("results", &names(&Outcome::ALL, Outcome::name))
            .field("first_line", case::BANNER)
            .field("last_line", HALTED)
            .close()
    });
    let benches = With(|w: &mut dyn Write| {
        benches()
            .fold(List::open(w), |l, b| {
                l.item(&BenchFact {
                    name: b.name,
                    suite: b.suite,
                })
            })
            .close()
    });
    let host_only = With(|w: &mut dyn Write| {
        HOST_ONLY
            .iter()
            .fold(List::open(w), |l, &(contender, reason)| {
                l.item(&HostOnlyFact { contender, reason })
            })
            .close()
    });
    Obj::new(w, "facts")
        .field("schema", &SCHEMA)
        .field("records", &records)
        .field("record_kinds", &kinds)
        .field("boot_suite", BOOT_SUITE)
        .field("where", &names(&Place::ALL, Place::name))
        .field(
            "execution",
            &names(&[Execution::Native, Execution::Emulated], Execution::name),
        )
        .field("emulated_above_ticks_per_iter", &Execution::EMULATED_ABOVE)
        .field("suites", &names(&Suite::ALL, Suite::name))
        .field("layouts_env", crate::platform::LAYOUTS_ENV)
        .field("modes", &names(&Mode::ALL, Mode::name))
        .field("config_keys", &key::ALL)
        .field("options", &options())
        .field("runners", &runners())
        .field("doors", &names(&Door::ALL, Door::name))
        .field("roles", &roles())
        .field("default_seed", &DEFAULT_SEED)
        .field("max_cpus", &crate::acpi::MAX_CPUS)
        .field("benches", &benches)
        .field("host_only", &host_only)
        .field(
            "pool_pages",
            &PoolPagesFact {
                min: MIN_POOL_PAGES,
                max: MAX_POOL_PAGES,
                standard: STANDARD_POOL_PAGES,
                max_pools: MAX_POOLS,
                sweep: SWEEP,
            },
        )
        .field("exit", &exit)
        .field("case_line", &case_line)
        .field("targets", &targets(TARGETS.iter()))
        .field("value_targets", &targets(VALUE_TARGETS.iter().copied()))
        .field("job_targets", JOB_TARGETS)
        .end()
}
