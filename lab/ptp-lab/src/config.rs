//! The run configuration, parsed from a command line of `key=value` words (the kernel's boot
//! command line, the host runner's arguments): `mode=bench|selftest suites=alloc,map,ptp
//! pools=1024,4096 quick=1 seed=42`. Every error names the bad value.

use crate::fixedstr::FixedStr;
use crate::json::{List, Obj, ToJson};
use core::fmt::{self, Write};
use vystem_ptp::pool::{MAX_POOL_PAGES, MIN_POOL_PAGES, STANDARD_POOL_PAGES};

/// Pool sizes one run may sweep.
pub const MAX_POOLS: usize = 8;
/// The pool sizes a sweep covers unless told (the report, the replay, the image's menu).
pub const SWEEP: [u32; 8] = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
/// The seed when none is given.
pub const DEFAULT_SEED: u64 = 0x5eed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Alloc,
    Map,
    Ptp,
    Tlb,
    Layouts,
    Churn,
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::Alloc,
        Suite::Map,
        Suite::Ptp,
        Suite::Tlb,
        Suite::Layouts,
        Suite::Churn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Alloc => "alloc",
            Suite::Map => "map",
            Suite::Ptp => "ptp",
            Suite::Tlb => "tlb",
            Suite::Layouts => "layouts",
            Suite::Churn => "churn",
        }
    }

    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Bench, Mode::Selftest];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bench => "bench",
            Mode::Selftest => "selftest",
        }
    }
}

impl crate::json::JsonKind for Mode {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl crate::json::JsonKind for Suite {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl crate::json::JsonKind for SuiteSet {
    const KIND: crate::json::Kind = crate::json::Kind::LIST;
}

impl crate::json::JsonKind for Config {
    const KIND: crate::json::Kind = crate::json::Kind::OBJECT;
}

impl ToJson for Mode {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.name().write_json(w)
    }
}

impl ToJson for Suite {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        self.name().write_json(w)
    }
}

/// The names of `items`, comma-separated (for messages that list what is known).
struct Names<T: 'static>(&'static [T], fn(&T) -> &'static str);

impl<T> fmt::Display for Names<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { ", " }, (self.1)(x))?;
        }
        Ok(())
    }
}

/// The command-line keys [`Config::parse`] knows; the options table ([`crate::options`]) says
/// which option sets each.
pub mod key {
    pub const MODE: &str = "mode";
    pub const SUITES: &str = "suites";
    pub const POOLS: &str = "pools";
    pub const QUICK: &str = "quick";
    pub const SEED: &str = "seed";
    pub const ALL: [&str; 5] = [MODE, SUITES, POOLS, QUICK, SEED];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteSet([bool; Suite::ALL.len()]);

impl SuiteSet {
    pub const ALL: SuiteSet = SuiteSet([true; Suite::ALL.len()]);

    pub fn has(&self, s: Suite) -> bool {
        self.0[s as usize]
    }
}

/// The suites in the set, as a list of names.
impl ToJson for SuiteSet {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        Suite::ALL
            .iter()
            .filter(|s| self.has(**s))
            .fold(List::open(w), |l, s| l.item(s))
            .close()
    }
}

/// The `config` object of the run record.
impl ToJson for Config {
    fn write_json(&self, w: &mut dyn Write) -> fmt::Result {
        Obj::open(w)
            .field("mode", &self.mode)
            .field("suites", &self.suites)
            .field("pool_pages", self.pools())
            .field("quick", &self.quick)
            .field("seed", &self.seed)
            .close()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bench,
    Selftest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub suites: SuiteSet,
    pools: [u32; MAX_POOLS],
    npools: usize,
    pub quick: bool,
    pub seed: u64,
}

type Word = FixedStr<64>;

fn word(s: &str) -> Word {
    FixedStr::from_bytes_lossy(s.as_bytes()).0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    UnknownKey(Word),
    NotKeyValue(Word),
    UnknownSuite(Word),
    UnknownMode(Word),
    NotANumber { key: &'static str, value: Word },
    PoolSize(u64),
    PoolTwice(u32),
    TooManyPools(usize),
    Empty(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey(k) => {
                write!(
                    f,
                    "unknown option '{k}' (known: {})",
                    Names(&key::ALL, |k| k)
                )
            }
            ConfigError::NotKeyValue(w) => write!(f, "'{w}' is not key=value"),
            ConfigError::UnknownSuite(s) => {
                write!(
                    f,
                    "unknown suite '{s}' (known: {})",
                    Names(&Suite::ALL, |s| s.name())
                )
            }
            ConfigError::UnknownMode(m) => write!(
                f,
                "unknown mode '{m}' (known: {})",
                Names(&Mode::ALL, |m| m.name())
            ),
            ConfigError::NotANumber { key, value } => write!(f, "{key}: '{value}' is not a number"),
            ConfigError::PoolSize(n) => {
                write!(
                    f,
                    "pool size {n} pages is outside {MIN_POOL_PAGES}..={MAX_POOL_PAGES}"
                )
            }
            ConfigError::PoolTwice(n) => write!(f, "pool size {n} given twice"),
            ConfigError::TooManyPools(n) => write!(f, "{n} pool sizes given, at most {MAX_POOLS}"),
            ConfigError::Empty(k) => write!(f, "{k}: empty list"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut pools = [0; MAX_POOLS];
        pools[0] = STANDARD_POOL_PAGES;
        Config {
            mode: Mode::Bench,
            suites: SuiteSet::ALL,
            pools,
            npools: 1,
            quick: false,
            seed: DEFAULT_SEED,
        }
    }
}

fn number(key: &'static str, v: &str) -> Result<u64, ConfigError> {
    v.parse::<u64>().map_err(|_| ConfigError::NotANumber {
        key,
        value: word(v),
    })
}

impl Config {
    pub fn pools(&self) -> &[u32] {
        &self.pools[..self.npools]
    }

    pub fn largest_pool(&self) -> u32 {
        self.pools()
            .iter()
            .copied()
            .max()
            .unwrap_or(STANDARD_POOL_PAGES)
    }

    /// Parse `key=value` words. Keys in `ignore` belong to the caller (e.g. the kernel's
    /// `fault=`) and are skipped.
    pub fn parse(cmdline: &str, ignore: &[&str]) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for w in cmdline.split_ascii_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                return Err(ConfigError::NotKeyValue(word(w)));
            };
            match k {
                key::MODE => {
                    c.mode = Mode::ALL
                        .into_iter()
                        .find(|m| m.name() == v)
                        .ok_or(ConfigError::UnknownMode(word(v)))?;
                }
                key::SUITES => {
                    let mut set = [false; Suite::ALL.len()];
                    for s in v.split(',').filter(|s| !s.is_empty()) {
                        let suite =
                            Suite::from_name(s).ok_or(ConfigError::UnknownSuite(word(s)))?;
                        set[suite as usize] = true;
                    }
                    if !set.contains(&true) {
                        return Err(ConfigError::Empty(key::SUITES));
                    }
                    c.suites = SuiteSet(set);
                }
                key::POOLS => {
                    c.npools = 0;
                    for s in v.split(',').filter(|s| !s.is_empty()) {
                        let n = number(key::POOLS, s)?;
                        if !(MIN_POOL_PAGES as u64..=MAX_POOL_PAGES as u64).contains(&n) {
                            return Err(ConfigError::PoolSize(n));
                        }
                        let n = n as u32; // in range, checked above
                        if c.pools().contains(&n) {
                            return Err(ConfigError::PoolTwice(n));
                        }
                        if c.npools == MAX_POOLS {
                            return Err(ConfigError::TooManyPools(v.split(',').count()));
                        }
                        c.pools[c.npools] = n;
                        c.npools += 1;
                    }
                    if c.npools == 0 {
                        return Err(ConfigError::Empty(key::POOLS));
                    }
                }
                key::QUICK => c.quick = number(key::QUICK, v)? != 0,
                key::SEED => c.seed = number(key::SEED, v)?,
                _ if ignore.contains(&k) => {}
                _ => return Err(ConfigError::UnknownKey(word(k))),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_line() {
        let c = Config::parse("", &[]).unwrap();
        assert_eq!(
            (c.mode, c.pools(), c.quick, c.suites),
            (Mode::Bench, &[4096][..], false, SuiteSet::ALL)
        );
        let c = Config::parse(
            "mode=selftest suites=map,ptp pools=64,65536 quick=1 seed=9 fault=pf",
            &["fault"],
        )
        .unwrap();
        assert_eq!(
            (c.mode, c.pools(), c.quick, c.seed),
            (Mode::Selftest, &[64, 65536][..], true, 9)
        );
        assert!(
            !c.suites.has(Suite::Alloc) && c.suites.has(Suite::Map) && c.suites.has(Suite::Ptp)
        );
        assert_eq!(c.largest_pool(), 65536);
    }

    #[test]
    fn every_error_names_the_bad_value() {
        let err = |s: &str| {
            let mut out = FixedStr::<200>::new();
            let e = Config::parse(s, &[]).unwrap_err();
            let _ = fmt::write(&mut out, format_args!("{e}"));
            out
        };
        assert_eq!(
            err("suites=alloc,smp").as_str(),
            "unknown suite 'smp' (known: alloc, map, ptp, tlb, layouts, churn)"
        );
        assert_eq!(
            err("pools=0").as_str(),
            "pool size 0 pages is outside 64..=65536"
        );
        assert_eq!(
            err("pools=4096,abc").as_str(),
            "pools: 'abc' is not a number"
        );
        assert_eq!(
            err("pools=99999999999").as_str(),
            "pool size 99999999999 pages is outside 64..=65536"
        );
        assert_eq!(
            err("pools=4294967296").as_str(),
            "pool size 4294967296 pages is outside 64..=65536"
        );
        assert_eq!(err("pools=,").as_str(), "pools: empty list");
        assert_eq!(
            err("pools=64,65,66,67,68,69,70,71,72").as_str(),
            "9 pool sizes given, at most 8"
        );
        assert_eq!(
            err("pools=4096,64,4096").as_str(),
            "pool size 4096 given twice"
        );
        assert_eq!(
            err("mode=fast").as_str(),
            "unknown mode 'fast' (known: bench, selftest)"
        );
        assert_eq!(
            err("colour=red").as_str(),
            "unknown option 'colour' (known: mode, suites, pools, quick, seed)"
        );
        assert_eq!(err("quick").as_str(), "'quick' is not key=value");
        assert_eq!(err("seed=-1").as_str(), "seed: '-1' is not a number");
    }
}
