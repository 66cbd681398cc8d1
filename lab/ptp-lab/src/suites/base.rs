//! What every benchmark is built on: the [`Bench`] entry, the [`Ctx`] a run gets (measure,
//! check, skip), and the common preconditions. The table that lists the entries
//! ([`super::TABLE`]) is apart, so no suite imports the table that lists it.

// Preconditions return a bounded string (no allocator here), which clippy finds large.
#![allow(clippy::result_large_err)]

use crate::case::Case;
use crate::config::{Config, Suite};
use crate::paired::Paired;
use crate::platform::{reason, Platform, Reason};
use crate::record::{self, Counts, SkipRecord};
use crate::rng::Rng;
use crate::target::Judge;
use crate::timing::{Closures, Entry, Id, Summary, Timer, Work, MAX_CONTENDERS};
use core::fmt::{self, Write};
use vystem_ptp::Pool;

/// One benchmark of the table.
pub struct Bench {
    pub name: &'static str,
    pub suite: Suite,
    pub precondition: fn(&mut Ctx<'_>) -> Result<(), Reason>,
    pub run: fn(&mut Ctx<'_>),
}

/// A reference of a benchmark's paired ratios: every other contender is compared with it.
#[derive(Debug, Clone, Copy)]
pub enum Ref {
    /// Another implementation.
    Peer(&'static str),
    /// A limit: the least work the contenders it names must do. One of them measured faster
    /// than it beyond the interval is a measurement fault.
    Limit(&'static str, &'static [&'static str]),
}

impl Ref {
    pub fn name(self) -> &'static str {
        match self {
            Ref::Peer(n) | Ref::Limit(n, _) => n,
        }
    }
    fn kind(self) -> &'static str {
        match self {
            Ref::Peer(_) => "peer",
            Ref::Limit(..) => "limit",
        }
    }
    /// Whether `imp` measured below this reference is a fault.
    fn bounds(self, imp: &str) -> bool {
        matches!(self, Ref::Limit(_, named) if named.contains(&imp))
    }
}

/// The most pairs of one benchmark (contenders times references).
const MAX_PAIRS: usize = 32;

/// Everything a benchmark run gets.
pub struct Ctx<'a> {
    pub platform: &'a mut dyn Platform,
    pub out: &'a mut dyn Write,
    pub timer: &'a mut dyn Timer,
    pub judge: &'a mut Judge,
    pub pool: Pool,
    pub cfg: &'a Config,
    pub counts: &'a mut Counts,
    pub bench: &'static str,
    pub suite: Suite,
    /// Native or emulated: targets in kernel runs are judged natively only.
    pub execution: crate::timing::Execution,
}

impl Ctx<'_> {
    pub fn pages(&self) -> u32 {
        self.pool.pages()
    }

    /// The identity of a measurement of this benchmark at this pool size.
    fn id<'p>(&self, imp: &'static str, per: &'p str, params: crate::json::Fields<'p>) -> Id<'p> {
        Id {
            suite: self.suite.name(),
            bench: self.bench,
            imp,
            pool_pages: self.pages(),
            per,
            params,
        }
    }

    /// Time `batch` on `state` (after an untimed `setup`, each sample) and print the
    /// measurement record; `ops` operations per batch, counted `per` "op" or "page".
    #[allow(clippy::too_many_arguments)]
    pub fn measure<T, S: FnMut(&mut T), B: FnMut(&mut T)>(
        &mut self,
        imp: &'static str,
        per: &str,
        ops: u64,
        params: crate::json::Fields<'_>,
        state: &mut T,
        setup: S,
        batch: B,
    ) -> Option<Summary> {
        let id = self.id(imp, per, params);
        let mut work = Closures {
            state,
            setup,
            batch,
        };
        let s = self.timer.time(id, ops, &mut work)?;
        let _ = record::measurement(self.out, &id, &s);
        self.counts.measurements += 1;
        self.judge.note(self.bench, imp, self.pages(), s.estimate());
        Some(s)
    }

    /// A contender of this benchmark, to time with the others ([`Ctx::measure_rounds`]): its
    /// name, what a batch counts (`ops` operations `per` "op" or "page"), its parameters, and
    /// its work (an untimed setup that makes its state afresh whatever ran before it, and the
    /// timed batch).
    pub fn contender<'p, 'w>(
        &self,
        imp: &'static str,
        per: &'p str,
        ops: u64,
        params: crate::json::Fields<'p>,
        work: &'w mut dyn Work,
    ) -> Entry<'p, 'w> {
        Entry {
            id: self.id(imp, per, params),
            ops,
            work,
        }
    }

    /// Time `contenders` together, in interleaved rounds (`crate::timing`), and print each
    /// one's measurement record, in order; then, for every reference in `refs` that was
    /// measured, the paired ratio of each other contender (limits aside) to it: a `ratio`
    /// record, which the targets are judged on. Criterion times them one after the other and
    /// pairs nothing. The summaries, in the order of `contenders` (at most
    /// [`MAX_CONTENDERS`]).
    pub fn measure_rounds(
        &mut self,
        contenders: &mut [Entry<'_, '_>],
        refs: &[Ref],
    ) -> [Option<Summary>; MAX_CONTENDERS] {
        let k = contenders.len().min(MAX_CONTENDERS);
        let contenders = &mut contenders[..k];
        let is_limit = |imp: &str| {
            refs.iter()
                .any(|r| matches!(r, Ref::Limit(..)) && r.name() == imp)
        };
        let mut pairs = [(0usize, 0usize); MAX_PAIRS];
        let mut of = [Ref::Peer(""); MAX_PAIRS];
        let mut np = 0;
        for &r in refs {
            let Some(b) = contenders.iter().position(|c| c.id.imp == r.name()) else {
                continue;
            };
            for (a, c) in contenders.iter().enumerate() {
                if a != b && !is_limit(c.id.imp) && np < MAX_PAIRS {
                    (pairs[np], of[np]) = ((a, b), r);
                    np += 1;
                }
            }
        }
        let mut summaries = [None; MAX_CONTENDERS];
        let mut ratios: [Option<Paired>; MAX_PAIRS] = [None; MAX_PAIRS];
        self.timer.time_rounds(
            contenders,
            &pairs[..np],
            &mut summaries[..k],
            &mut ratios[..np],
        );
        for (c, s) in contenders.iter().zip(&summaries) {
            if let Some(s) = s {
                let _ = record::measurement(self.out, &c.id, s);
                self.counts.measurements += 1;
                self.judge
                    .note(self.bench, c.id.imp, self.pages(), s.estimate());
            }
        }
        for ((&(a, b), r), p) in pairs[..np].iter().zip(&of).zip(&ratios) {
            let Some(p) = *p else { continue };
            let (ours, other) = (contenders[a].id.imp, contenders[b].id.imp);
            let fault = r.bounds(ours) && p.high < 1.0;
            let _ = record::RatioRecord {
                suite: self.suite.name(),
                bench: self.bench,
                pool_pages: self.pages(),
                ours,
                other,
                reference: r.kind(),
                rounds: p.rounds,
                median: p.median,
                ci_low: p.low,
                ci_high: p.high,
                method: crate::paired::METHOD,
                fault,
            }
            .write(self.out);
            self.judge
                .note_pair(self.bench, ours, other, self.pages(), p, fault);
        }
        summaries
    }

    /// Print a measurement the benchmark summarized itself (samples no timer took: what
    /// another CPU measured).
    pub fn record(
        &mut self,
        imp: &'static str,
        per: &str,
        params: crate::json::Fields<'_>,
        s: &Summary,
    ) {
        let id = self.id(imp, per, params);
        let _ = record::measurement(self.out, &id, s);
        self.counts.measurements += 1;
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        let _ = record::CheckRecord {
            suite: self.suite.name(),
            bench: self.bench,
            name,
            pool_pages: Some(self.pages()),
            ok,
            detail,
        }
        .report(self.out);
        self.counts.checks += 1;
        if !ok {
            self.counts.checks_failed += 1;
        }
        ok
    }

    pub fn skip(&mut self, why: &str) {
        let pages = self.pages();
        let _ = SkipRecord {
            suite: self.suite.name(),
            bench: self.bench,
            pool_pages: pages,
            reason: why,
        }
        .report(self.out);
        self.counts.skips += 1;
    }

    /// A deterministic pseudo-random stream from the run's seed (xorshift64).
    pub fn rng(&self) -> Rng {
        Rng::new(self.cfg.seed)
    }
}

pub fn always(_: &mut Ctx<'_>) -> Result<(), Reason> {
    Ok(())
}

/// The PTP checks load tables into CR3; the self-map is NX, which needs the CPU's NX bit
/// (EFER.NXE): without it bit 63 is reserved and every access would fault.
pub fn needs_ring0(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    if !ctx.platform.cpu().nx {
        return Err(reason(format_args!(
            "CPU lacks NX (CPUID 0x80000001 EDX.NX): the PTP's NX self-map would fault"
        )));
    }
    match ctx.platform.mmu() {
        Some(_) => Ok(()),
        None => Err(reason(format_args!(
            "needs ring 0 (CR3, invlpg, fault probes): runs in the bench kernel only"
        ))),
    }
}
