//! Test cases: one line after each check, skip, fault, panic, error and end record, naming the
//! case and its result, for test harnesses that read lines and not JSON (LAVA's monitors, whose
//! pattern can take a case's name from one group only).
//!
//! `# case NAME RESULT`: NAME is built from the record's fields (suite, bench, check name and
//! pool size; a fault by its name, vector and CPU) and written as LAVA stores a case id
//! (lowercase, every run of non-word characters one `_`), so the name in the serial log is the
//! name in LAVA's results; RESULT is `pass`, `fail` or `skip`. The run's last line starts with
//! [`crate::exit::HALTED`]. Both reach the tools through `ptp-host facts` (`case_line`).

use crate::record::{CheckRecord, ErrorRecord, FaultRecord, PanicRecord, SkipRecord};
use core::fmt::{self, Write};

/// What starts a case line.
pub const PREFIX: &str = "# case ";

/// How the bench kernel's first line starts (a harness starts reading cases there; the run's
/// last line starts with [`crate::exit::HALTED`]).
pub const BANNER: &str = "# bench-kernel";

/// A case's result, as LAVA names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Pass, Outcome::Fail, Outcome::Skip];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}

/// A record that is a test case: it writes itself, then its case line ([`Case::report`]).
pub trait Case {
    /// The record's own line.
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result;
    /// The case's name, in words (separators are made `_` on the way out).
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result;
    fn outcome(&self) -> Outcome;

    /// The record, then its case line.
    fn report(&self, w: &mut dyn Write) -> fmt::Result {
        self.write_record(w)?;
        w.write_str(PREFIX)?;
        self.write_name(&mut CaseId::new(w))?;
        writeln!(w, " {}", self.outcome().name())
    }
}

/// Writes what it is given as LAVA stores a case id: letters lowercased, each run of characters
/// that are neither letters, digits nor `_` one `_` (LAVA's `re.sub(r"\W+", "_", id.lower())`,
/// whose `\w` takes Unicode letters and digits too).
struct CaseId<'w> {
    w: &'w mut dyn Write,
    in_run: bool,
}

impl<'w> CaseId<'w> {
    fn new(w: &'w mut dyn Write) -> Self {
        CaseId { w, in_run: false }
    }
}

impl Write for CaseId<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_alphanumeric() || c == '_' {
                self.in_run = false;
                for l in c.to_lowercase() {
                    self.w.write_char(l)?;
                }
            } else if !self.in_run {
                self.in_run = true;
                self.w.write_char('_')?;
            }
        }
        Ok(())
    }
}

fn pool(w: &mut dyn Write, pages: Option<u32>) -> fmt::Result {
    match pages {
        Some(n) => write!(w, " pool{n}"),
        None => Ok(()),
    }
}

impl Case for CheckRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "{} {} {}", self.suite, self.bench, self.name)?;
        pool(w, self.pool_pages)
    }
    fn outcome(&self) -> Outcome {
        if self.ok {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }
}

impl Case for SkipRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "{} {}", self.suite, self.bench)?;
        pool(w, Some(self.pool_pages))
    }
    fn outcome(&self) -> Outcome {
        Outcome::Skip
    }
}

impl Case for FaultRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(
            w,
            "fault {} vector{} cpu{}",
            self.name, self.vector, self.cpu
        )
    }
    fn outcome(&self) -> Outcome {
        Outcome::Fail
    }
}

impl Case for PanicRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "panic {}", self.bench)
    }
    fn outcome(&self) -> Outcome {
        Outcome::Fail
    }
}

impl Case for ErrorRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "error {}", self.kind)
    }
    fn outcome(&self) -> Outcome {
        Outcome::Fail
    }
}

impl Case for crate::record::EndRecord<'_> {
    fn write_record(&self, w: &mut dyn Write) -> fmt::Result {
        self.write(w)
    }
    fn write_name(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_str("end")
    }
    /// The run as a whole: passed when it ended `ok` (every check passed).
    fn outcome(&self) -> Outcome {
        if self.status == "ok" {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::string::String;

    fn line(c: &dyn Case) -> String {
        let mut s = String::new();
        c.report(&mut s).unwrap();
        s.lines().nth(1).unwrap().into()
    }

    #[test]
    fn a_case_line_follows_its_record_named_as_lava_stores_it() {
        let check = CheckRecord {
            suite: "boot",
            bench: "selftest",
            name: "probe_unmapped-PF",
            pool_pages: None,
            ok: true,
            detail: format_args!("x"),
        };
        let mut s = String::new();
        check.report(&mut s).unwrap();
        let mut lines = s.lines();
        assert!(lines.next().unwrap().starts_with(r#"{"type":"check""#));
        assert_eq!(
            lines.next(),
            Some("# case boot_selftest_probe_unmapped_pf pass")
        );
        assert_eq!(lines.next(), None);
        let failed = CheckRecord {
            ok: false,
            pool_pages: Some(4096),
            ..check
        };
        assert_eq!(
            line(&failed),
            "# case boot_selftest_probe_unmapped_pf_pool4096 fail"
        );
        let skip = SkipRecord {
            suite: "map",
            bench: "map_1gib",
            pool_pages: 64,
            reason: "r",
        };
        assert_eq!(line(&skip), "# case map_map_1gib_pool64 skip");
        let fault = FaultRecord {
            cpu: 1,
            vector: 14,
            name: "#PF",
            error_code: 0,
            rip: 0,
            cr2: 0,
            rsp: 0,
            bench: "b",
        };
        assert_eq!(line(&fault), "# case fault_pf_vector14_cpu1 fail");
        let error = ErrorRecord {
            kind: "bad_cmdline",
            msg: format_args!("m"),
        };
        assert_eq!(line(&error), "# case error_bad_cmdline fail");
        // A layout named from a file: Unicode letters stay, as LAVA's \w keeps them.
        let layout = CheckRecord {
            suite: "layouts",
            bench: "fit",
            name: "Café--x",
            pool_pages: None,
            ok: true,
            detail: format_args!(""),
        };
        assert_eq!(line(&layout), "# case layouts_fit_café_x pass");
    }
}
