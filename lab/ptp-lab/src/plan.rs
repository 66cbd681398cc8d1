//! The one check of a run's arguments: `ptp-host plan DOOR ARGS...` turns what a person typed
//! at `scripts/bench.sh` or `scripts/lava.sh` into the runner, the canonical config, the kernel's
//! command line and every option's value (defaults filled in), or refuses it with one message
//! naming the bad value. Every way in asks here; nothing downstream checks again.

use crate::config::{key, Config, ConfigError, Mode, Suite};
use crate::json::ToJson;
use crate::options::{self, Kind, Opt};
use crate::runner::{Door, Runner, Select, RUNNERS};
use serde_json::{json, Map, Value};
use std::fmt;
use std::format;
use std::path::PathBuf;
use std::string::{String, ToString};
use std::vec::Vec;

/// Why a run's arguments are refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    Unknown {
        arg: String,
        door: Door,
    },
    Stray(String),
    NoValue(&'static str),
    TakesNoValue(&'static str),
    Twice(&'static str),
    Bad {
        flag: &'static str,
        value: String,
        why: String,
    },
    Choose(&'static str, &'static str),
    NoRunner(Door),
    NotTaken {
        flag: &'static str,
        value: Option<String>,
        runner: Runner,
    },
    Fixed {
        flag: &'static str,
        value: String,
        runner: Runner,
    },
    Config {
        flag: &'static str,
        err: ConfigError,
    },
    DoesNotFit {
        pool: u32,
        memory: u64,
    },
    Out {
        path: String,
        why: String,
    },
    CriterionArgs(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Unknown { arg, door } => {
                write!(f, "unknown option {arg:?} ({} --help lists them)", door.script())
            }
            PlanError::Stray(a) => write!(f, "unexpected argument {a:?} (options start with --)"),
            PlanError::NoValue(flag) => write!(f, "{flag}: needs a value"),
            PlanError::TakesNoValue(flag) => write!(f, "{flag}: takes no value"),
            PlanError::Twice(flag) => write!(f, "{flag}: given twice"),
            PlanError::Bad { flag, value, why } => write!(f, "{flag}: {value:?} {why}"),
            PlanError::Choose(a, b) => write!(f, "{a} and {b}: choose one"),
            PlanError::NoRunner(door) => {
                let flags: Vec<&str> = RUNNERS
                    .iter()
                    .filter(|r| r.door == *door)
                    .filter_map(|r| r.select.flag().map(|o| o.flag))
                    .collect();
                write!(f, "{}: give {} (what to run)", door.script(), flags.join(" or "))
            }
            PlanError::NotTaken {
                flag,
                value,
                runner,
            } => {
                let takers: Vec<&str> = options::by_flag(flag)
                    .map(|o| o.on().map(|r| r.row().title).collect())
                    .unwrap_or_default();
                write!(
                    f,
                    "{flag}{}: {} does not take it (it applies to {})",
                    value.as_ref().map(|v| format!(" {v}")).unwrap_or_default(),
                    runner.row().title,
                    takers.join(", ")
                )
            }
            PlanError::Fixed {
                flag,
                value,
                runner,
            } => write!(
                f,
                "{flag} {value}: {} cannot change it: {}",
                runner.row().title,
                runner.row().fixed_why
            ),
            PlanError::Config { flag, err } => write!(f, "{flag}: {err}"),
            PlanError::DoesNotFit { pool, memory } => write!(
                f,
                "--pool-pages: a pool of {pool} pages ({} MiB) does not fit in the guest's {memory} MiB of \
                 RAM (--memory)",
                (u64::from(*pool) * 4096) >> 20
            ),
            PlanError::Out { path, why } => {
                write!(f, "--out: {path} cannot take a results file: {why}")
            }
            PlanError::CriterionArgs(rest) => write!(
                f,
                "arguments after --, {rest:?}, go to criterion: they need --criterion"
            ),
        }
    }
}

/// A checked run: what `ptp-host plan` prints (as JSON, [`Plan::to_json`]).
#[derive(Debug)]
pub struct Plan {
    pub door: Door,
    pub runner: Runner,
    pub config: Config,
    /// The canonical words for the kernel's (and the host runner's) command line.
    pub cmdline: String,
    /// Every option the runner takes, given or defaulted, by name.
    pub options: Map<String, Value>,
    pub criterion_args: Vec<String>,
}

/// Where the repository is: relative defaults (`results`, ...) are under it.
fn repo() -> PathBuf {
    let here = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    here.canonicalize().unwrap_or(here)
}

/// The pool sizes of `text` (`--pool-pages`'s value), as [`Config::parse`] checks them.
pub fn pools(text: &str) -> Result<Vec<u32>, PlanError> {
    let cfg = words(&[(options::by_name("pool_pages"), text)])?;
    Ok(cfg.pools().to_vec())
}

/// The config the given word options make, each error named by the option that caused it.
fn words(given: &[(Option<&'static Opt>, &str)]) -> Result<Config, PlanError> {
    let mut line = String::new();
    let mut cfg = Config::default();
    for (opt, value) in given {
        let Some(opt) = opt else { continue };
        let Some(word) = opt.word else { continue };
        if value.chars().any(char::is_whitespace) {
            return Err(PlanError::Bad {
                flag: opt.flag,
                value: value.to_string(),
                why: "has a space: one comma-separated list".into(),
            });
        }
        line.push_str(&format!(" {word}={value}"));
        cfg = Config::parse(&line, &[]).map_err(|err| PlanError::Config {
            flag: opt.flag,
            err,
        })?;
    }
    Ok(cfg)
}

fn number(opt: &'static Opt, min: u64, max: u64, v: &str) -> Result<u64, PlanError> {
    let n = v
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse::<u64>().ok())
        .flatten()
        .filter(|n| (min..=max).contains(n));
    n.ok_or_else(|| PlanError::Bad {
        flag: opt.flag,
        value: v.to_string(),
        why: if (min, max) == (1, u64::MAX) {
            "is not a positive whole number".into()
        } else {
            format!("is not a whole number in {min}..={max}")
        },
    })
}

/// The options given, each once, with its value (switches: none).
type Given = Vec<(&'static Opt, Option<String>)>;

/// The arguments as given, and those after `--` (criterion's).
fn split(door: Door, args: &[String]) -> Result<(Given, Vec<String>), PlanError> {
    let mut given: Vec<(&'static Opt, Option<String>)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            return Ok((given, it.cloned().collect()));
        }
        if !arg.starts_with("--") {
            return Err(PlanError::Stray(arg.clone()));
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let offered = |o: &&Opt| o.on().any(|r| r.row().door == door);
        let Some(opt) = options::by_flag(flag).filter(offered) else {
            return Err(PlanError::Unknown {
                arg: arg.clone(),
                door,
            });
        };
        if given.iter().any(|(o, _)| o.name == opt.name) {
            return Err(PlanError::Twice(opt.flag));
        }
        let value = match (opt.kind, inline) {
            (Kind::Switch, Some(_)) => return Err(PlanError::TakesNoValue(opt.flag)),
            (Kind::Switch, None) => None,
            (_, Some(v)) => Some(v),
            (_, None) => Some(it.next().cloned().ok_or(PlanError::NoValue(opt.flag))?),
        };
        given.push((opt, value));
    }
    Ok((given, Vec::new()))
}

/// The runner the arguments choose: its own option, else its `--accel` value, else the door's
/// default (the runner table says which).
fn runner(door: Door, given: &[(&'static Opt, Option<String>)]) -> Result<Runner, PlanError> {
    let rows = || RUNNERS.iter().filter(move |r| r.door == door);
    let chosen: Vec<&Opt> = given
        .iter()
        .map(|(o, _)| *o)
        .filter(|o| rows().any(|r| r.select.flag().map(|f| f.name) == Some(o.name)))
        .collect();
    if let (Some(a), Some(b)) = (chosen.first(), chosen.get(1)) {
        return Err(PlanError::Choose(a.flag, b.flag));
    }
    let accel = given
        .iter()
        .find(|(o, _)| o.name == "accel")
        .and_then(|(_, v)| v.as_deref());
    let by = |pick: &dyn Fn(&Select) -> bool| rows().find(|r| pick(&r.select)).map(|r| r.runner);
    chosen
        .first()
        .and_then(|o| by(&|s| s.flag().map(|f| f.name) == Some(o.name)))
        .or_else(|| by(&|s| matches!(s, Select::Accel(a) if Some(*a) == accel)))
        .or_else(|| by(&|s| matches!(s, Select::Default)))
        .ok_or(PlanError::NoRunner(door))
}

/// Check `args` given at `door`; the plan, or the first thing wrong with them.
pub fn plan(door: Door, args: &[String]) -> Result<Plan, PlanError> {
    let (given, criterion_args) = split(door, args)?;
    let runner = runner(door, &given)?;
    let row = runner.row();
    // Typed values, in the order given; refused where the runner does not take them.
    let mut values: Map<String, Value> = Map::new();
    for (opt, value) in &given {
        if !opt.takes(runner) {
            return Err(PlanError::NotTaken {
                flag: opt.flag,
                value: value.clone(),
                runner,
            });
        }
        let v = value.as_deref().unwrap_or("");
        let typed = match opt.kind {
            Kind::Switch => Value::Bool(true),
            Kind::Number { min, max } => Value::from(number(opt, min, max, v)?),
            Kind::Choice(words) if !words.contains(&v) => {
                return Err(PlanError::Bad {
                    flag: opt.flag,
                    value: v.to_string(),
                    why: format!("is not one of {}", words.join(", ")),
                })
            }
            _ => Value::String(v.to_string()),
        };
        if let Some((_, fixed)) = row.fixed.iter().find(|(n, _)| *n == opt.name) {
            if typed.to_string().trim_matches('"') != *fixed {
                return Err(PlanError::Fixed {
                    flag: opt.flag,
                    value: v.to_string(),
                    runner,
                });
            }
        }
        values.insert(opt.name.into(), typed);
    }
    if !criterion_args.is_empty() && runner != Runner::Criterion {
        return Err(PlanError::CriterionArgs(criterion_args.join(" ")));
    }
    let text = |name: &str| {
        given
            .iter()
            .find(|(o, _)| o.name == name)
            .and_then(|(_, v)| v.as_deref())
    };
    let mut word_values: Vec<(Option<&'static Opt>, String)> = Vec::new();
    for (opt, v) in &given {
        match opt.word {
            Some(key::MODE) => word_values.push((Some(opt), "selftest".into())),
            Some(key::QUICK) => word_values.push((Some(opt), "1".into())),
            Some(_) => word_values.push((Some(opt), v.clone().unwrap_or_default())),
            None => {}
        }
    }
    let refs: Vec<(Option<&'static Opt>, &str)> =
        word_values.iter().map(|(o, v)| (*o, v.as_str())).collect();
    let config = words(&refs)?;

    // What the table leaves to the plan.
    let largest = u64::from(config.largest_pool());
    let memory = match values.get("memory").and_then(Value::as_u64) {
        Some(m) => m,
        None => 512.max((((largest + 1) * 4096) >> 20) + 256),
    };
    if matches!(runner, Runner::Qemu | Runner::Bochs) {
        // The pool plus a scratch page must fit beside the kernel (~2 MiB) and low memory.
        if let Some(&pool) = config
            .pools()
            .iter()
            .find(|&&n| (u64::from(n) + 1) * 4096 + (4 << 20) > memory << 20)
        {
            return Err(PlanError::DoesNotFit { pool, memory });
        }
    }
    let short = config.quick || config.mode == Mode::Selftest;
    let timeout = (if short { 120 } else { 1800 }) * if runner == Runner::Bochs { 5 } else { 1 };
    let computed = |name: &str| -> Option<Value> {
        match name {
            "memory" if row.kernel => Some(memory.into()),
            "timeout" => Some(timeout.into()),
            "seed" => Some(config.seed.into()),
            "accel" if runner == Runner::Bochs => Some("bochs".into()),
            _ => None,
        }
    };
    let mut options = Map::new();
    for opt in options::all().filter(|o| o.takes(runner)) {
        let value = if let Some(v) = values.get(opt.name) {
            v.clone()
        } else if let Some(v) = computed(opt.name) {
            v
        } else if let Some((_, fixed)) = row.fixed.iter().find(|(n, _)| *n == opt.name) {
            default_value(opt, fixed)
        } else {
            default_value(opt, opt.default)
        };
        options.insert(opt.name.into(), value);
    }
    // Lists as the config holds them.
    options.insert("pool_pages".into(), json!(config.pools()));
    options.insert("suite".into(), json!(suite_names(&config)));
    if let Some(Value::String(out)) = options.get("out") {
        check_writable(out)?;
    }
    let mut cmdline = cmdline(&config);
    if let Some(extra) = text("append_extra").filter(|e| !e.is_empty()) {
        cmdline.push(' ');
        cmdline.push_str(extra);
    }
    Ok(Plan {
        door,
        runner,
        config,
        cmdline,
        options,
        criterion_args,
    })
}

fn suite_names(config: &Config) -> Vec<&'static str> {
    Suite::ALL
        .iter()
        .filter(|s| config.suites.has(**s))
        .map(|s| s.name())
        .collect()
}

/// The canonical command line of `config`: every key, in [`key::ALL`]'s order.
pub fn cmdline(config: &Config) -> String {
    let pools: Vec<String> = config.pools().iter().map(u32::to_string).collect();
    format!(
        "{}={} {}={} {}={} {}={} {}={}",
        key::MODE,
        config.mode.name(),
        key::SUITES,
        suite_names(config).join(","),
        key::POOLS,
        pools.join(","),
        key::QUICK,
        u8::from(config.quick),
        key::SEED,
        config.seed
    )
}

/// A default as its kind holds it: paths under the repository, numbers as numbers.
fn default_value(opt: &Opt, text: &str) -> Value {
    match opt.kind {
        _ if text.is_empty() => match opt.kind {
            Kind::Switch => Value::Bool(false),
            _ => Value::Null,
        },
        Kind::Number { .. } => text.parse::<u64>().map_or(Value::Null, Value::from),
        Kind::Path => Value::String(repo().join(text).to_string_lossy().into_owned()),
        _ => Value::String(text.into()),
    }
}

/// `--out` must take a file: created if missing, a probe written and removed.
fn check_writable(out: &str) -> Result<(), PlanError> {
    let err = |e: std::io::Error| PlanError::Out {
        path: out.to_string(),
        why: e.to_string(),
    };
    let dir = PathBuf::from(out);
    std::fs::create_dir_all(&dir).map_err(err)?;
    // One probe per check: two checks at once in one process (the tests) must not share it.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".ptplab-probe-{}-{k}", std::process::id()));
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}

impl Plan {
    pub fn to_json(&self) -> Value {
        let mut config = String::new();
        let _ = self.config.write_json(&mut config);
        let row = self.runner.row();
        json!({
            "door": self.door.name(),
            "runner": self.runner.name(),
            "needs": row.needs,
            "cmdline": self.cmdline,
            "config": serde_json::from_str::<Value>(&config).unwrap_or(Value::Null),
            "options": self.options,
            "criterion_args": self.criterion_args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RUNNERS;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn err(door: Door, s: &str) -> String {
        plan(door, &args(s)).unwrap_err().to_string()
    }

    #[test]
    fn the_runner_follows_the_switches() {
        let out = std::env::temp_dir().join("ptplab-plan-test");
        let o = format!(" --out {}", out.display());
        for (a, r) in [
            ("", Runner::Qemu),
            ("--accel kvm", Runner::Qemu),
            ("--accel bochs", Runner::Bochs),
            ("--host", Runner::Host),
            ("--criterion", Runner::Criterion),
        ] {
            assert_eq!(
                plan(Door::Bench, &args(&format!("{a}{o}"))).unwrap().runner,
                r,
                "{a}"
            );
        }
        assert_eq!(
            plan(Door::Bench, &args("--image x.iso")).unwrap().runner,
            Runner::Image
        );
        assert_eq!(
            plan(Door::Lava, &args(&format!("--local{o}")))
                .unwrap()
                .runner,
            Runner::LavaLocal
        );
    }

    #[test]
    fn the_canonical_line_and_defaults() {
        let out = std::env::temp_dir().join("ptplab-plan-test");
        let p = plan(
            Door::Bench,
            &args(&format!(
                "--pool-pages=1024,65536 --quick --suite map,alloc --out {}",
                out.display()
            )),
        )
        .unwrap();
        assert_eq!(
            p.cmdline,
            "mode=bench suites=alloc,map pools=1024,65536 quick=1 seed=24301"
        );
        assert_eq!(p.options["memory"], json!(512)); // 256 MiB of pool + 256, at least 512
        assert_eq!(p.options["timeout"], json!(120));
        assert_eq!(p.options["pool_pages"], json!([1024, 65536]));
        assert_eq!(p.options["cpus"], json!(1));
        assert!(!p.options.contains_key("menu_timeout"));
        let p = plan(
            Door::Bench,
            &args(&format!("--accel bochs --out {}", out.display())),
        )
        .unwrap();
        assert_eq!(
            (p.options["timeout"].clone(), p.options["accel"].clone()),
            (json!(9000), json!("bochs"))
        );
    }

    #[test]
    fn every_refusal_names_the_bad_value() {
        let b = Door::Bench;
        for (a, want) in [
            ("--pool-page 4096", "unknown option \"--pool-page\" (scripts/bench.sh --help lists them)"),
            ("--local", "unknown option \"--local\" (scripts/bench.sh --help lists them)"),
            ("--pool-pages 4096,4096", "--pool-pages: pool size 4096 given twice"),
            ("--pool-pages 0", "--pool-pages: pool size 0 pages is outside 64..=65536"),
            ("--suite tbl", "--suite: unknown suite 'tbl' (known: alloc, map, ptp, tlb, layouts, churn)"),
            ("--host --accel tcg", "--accel tcg: the host runner (--host) does not take it (it applies to the \
              bench kernel under QEMU, the bench kernel under Bochs, a LAVA job of the qemu device type (--local))"),
            ("--seed abc", "--seed: \"abc\" is not a positive whole number"),
            ("--timeout 0", "--timeout: \"0\" is not a positive whole number"),
            ("--accel xen", "--accel: \"xen\" is not one of auto, kvm, tcg, bochs"),
            ("--menu-timeout 601 --image x", "--menu-timeout: \"601\" is not a whole number in 0..=600"),
            ("--cpus 17", "--cpus: \"17\" is not a whole number in 1..=16"),
            ("--host --criterion", "--host and --criterion: choose one"),
            ("--quick --quick", "--quick: given twice"),
            ("--quick=1", "--quick: takes no value"),
            ("--seed", "--seed: needs a value"),
            ("pools=64", "unexpected argument \"pools=64\" (options start with --)"),
            ("-- --noplot", "arguments after --, \"--noplot\", go to criterion: they need --criterion"),
            ("--pool-pages 65536 --memory 128", "--pool-pages: a pool of 65536 pages (256 MiB) does not fit in \
              the guest's 128 MiB of RAM (--memory)"),
        ] {
            assert_eq!(err(b, a), want.split_whitespace().collect::<Vec<_>>().join(" "), "{a}");
        }
        let spaced = plan(b, &["--pool-pages".into(), "64 mode=bench".into()]).unwrap_err();
        assert_eq!(
            spaced.to_string(),
            "--pool-pages: \"64 mode=bench\" has a space: one comma-separated list"
        );
        assert_eq!(err(Door::Lava, "--local --accel kvm"), "--accel kvm: a LAVA job of the qemu device type \
            (--local) cannot change it: its device dictionary (lava/devices/qemu-tcg.jinja2) runs the kernel under \
            TCG, one CPU, with the dictionary's memory".split_whitespace().collect::<Vec<_>>().join(" "));
        assert!(err(Door::Lava, "--local --memory 512").starts_with("unknown option \"--memory\""));
        assert_eq!(
            err(Door::Lava, "--selftest"),
            "scripts/lava.sh: give --local or --jobs or --server (what to run)"
        );
        assert!(err(Door::Lava, "--local --host").starts_with("unknown option \"--host\""));
        assert_eq!(
            plan(Door::Lava, &args("--local --accel tcg --cpus 1 --out /tmp"))
                .unwrap()
                .runner,
            Runner::LavaLocal
        );
    }

    #[test]
    fn every_runner_in_the_table_is_chosen_by_some_arguments() {
        for row in RUNNERS {
            assert!(
                options::all().any(|o| o.takes(row.runner)),
                "{}",
                row.runner.name()
            );
        }
    }
}
