//! The PTP lab: everything around the `vystem-ptp` algorithms that measures them, written once
//! and run in three places: the bench kernel (real page tables), the host runner and criterion
//! (simulated memory, feature `std`).
//!
//! - [`suites`]: the benchmark table (one flat table: name, suite, precondition, run);
//! - [`platform`]: where the table runs (kernel or host), and what ring 0 offers;
//! - [`timing`]: the [`timing::Timer`] every measurement goes through, and the RDTSC harness,
//!   which times the contenders of a benchmark in interleaved rounds;
//! - [`paired`]: paired ratios (the median of per-round ratios and its interval);
//! - [`tsc`]: the three TSC reads (interval start, interval stop, unfenced for timeouts);
//! - [`session`]: one run, as every platform builds it;
//! - [`record`]: the one writer of every JSON Lines record, and their declared shapes;
//! - [`case`]: the test-case line after each check, skip, fault, panic, error and end record;
//! - [`target`]: the speed targets and their judge;
//! - [`config`], [`exit`], [`facts`]: the run's command line, exit codes, and the facts the
//!   Python tools ask for;
//! - [`options`], [`runner`], [`plan`] (feature `std`): every option of a run once, where a run
//!   goes, and the one check that turns arguments into a run;
//! - [`cpu`]: CPU facts through raw-cpuid; [`json`], [`fixedstr`]: allocation-free output;
//! - [`host`] (feature `std`): the host platform.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod acpi;
pub mod case;
pub mod churn;
pub mod config;
pub mod cpu;
pub mod exit;
pub mod facts;
pub mod fixedstr;
#[cfg(feature = "std")]
pub mod host;
pub mod json;
pub mod layout_text;
pub mod load;
pub mod option;
pub mod options;
pub mod paired;
#[cfg(feature = "std")]
pub mod plan;
pub mod platform;
pub mod record;
#[cfg(feature = "std")]
pub mod replay;
pub mod rng;
pub mod runner;
pub mod session;
pub mod suites;
pub mod target;
pub mod timing;
pub mod tsc;
